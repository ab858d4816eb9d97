"""Settings, logging setup and the gunicorn config, shared by the API and the workers."""
