-- The scheduler that runs each app (docker-local or swarm); every existing app runs on docker-local.
ALTER TABLE apps ADD COLUMN scheduler TEXT NOT NULL DEFAULT 'docker-local';
