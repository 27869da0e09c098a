"""paas: a Heroku-style micro-PaaS (git push over SSH, buildpacks, Docker, nginx)."""

__version__ = "0.1.0"
