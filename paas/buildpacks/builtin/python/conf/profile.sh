export PATH="/app/.heroku/python/bin:$PATH"
export VIRTUAL_ENV=/app/.heroku/python
export PYTHONUNBUFFERED=1
