from services.minutes import models
from shared.migrations import run_env

run_env(models.OWNED_TABLES)
