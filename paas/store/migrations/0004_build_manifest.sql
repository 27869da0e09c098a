-- app.json as parsed once at push, kept with the build it was pushed with (checks, cron, addons read it)
ALTER TABLE builds ADD COLUMN manifest TEXT NOT NULL DEFAULT '{}';
