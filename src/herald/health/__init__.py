"""Health of every component: database, broker, workers, scheduler."""
