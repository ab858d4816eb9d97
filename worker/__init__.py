"""Celery workers: the LangGraph agent and token publishing (built in the job-pipeline issue).

May import `api` (models, repositories, services); `api` never imports this package.
"""
