"""The scheduler (Celery beat with Herald's scheduler) and its periodic jobs."""
