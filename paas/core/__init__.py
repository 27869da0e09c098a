"""What every layer shares: context, output streams, validation, names, the app manifest.

The core imports the store and nothing above it; errors and settings sit beside it in
`paas/errors.py` and `paas/settings.py`.
"""
