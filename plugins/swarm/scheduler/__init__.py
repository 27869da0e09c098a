"""The swarm plugin's scheduler layer (below its service, nodes.py; the core's is paas/scheduler):
the `swarm` scheduler itself (swarm.py), the cluster's engine and firewall (swarm_cluster.py), and
the private registry the nodes pull from with its certificates (registry.py, registry_pki.py).
They take an engine and settings, never a user: the rules are in nodes.py."""
