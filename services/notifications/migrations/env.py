from services.notifications import models
from shared.migrations import run_env

run_env([models.Recipient.__tablename__, models.Delivery.__tablename__, models.NoticeSession.__tablename__,
         models.NoticeSeat.__tablename__])
