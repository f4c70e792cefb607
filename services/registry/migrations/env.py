from services.registry import models
from shared.migrations import run_env

run_env([models.Member.__tablename__, models.EmailToken.__tablename__, models.WebSession.__tablename__])
