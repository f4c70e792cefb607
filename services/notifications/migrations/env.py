from services.notifications import models
from shared.migrations import run_env

run_env([m.__tablename__ for m in (  # type: ignore[attr-defined]
    models.Recipient, models.MemberPreference, models.Subscriber, models.SubscriberTopic, models.Notice,
    models.Delivery, models.NoticeSession, models.NoticeSeat, models.NoticeAttendee,
    models.ContactMessage)])
