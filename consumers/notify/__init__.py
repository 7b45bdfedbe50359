"""Chat notifications: webhook endpoints whose body is a chat message.

:mod:`~consumers.notify.spec` holds the target spec, patch and views; one
module per platform shapes its message within the platform's limits
(:mod:`~consumers.notify.discord`, :mod:`~consumers.notify.slack`,
:mod:`~consumers.notify.apprise`); :mod:`~consumers.notify.template` renders
templates, :mod:`~consumers.notify.limits` fits text into them and
:mod:`~consumers.notify.pacing` honours each platform's rate limits.
"""

from consumers.notify.spec import (
    KINDS,
    AppriseSpec,
    ChatSpec,
    DiscordSpec,
    NotificationsConfig,
    NotifyPatch,
    NotifySetup,
    NotifySpec,
    SlackSpec,
    notify_kinds,
    notify_setup,
    notify_view,
    public_notify_view,
    spec_of,
)

__all__ = [
    "KINDS",
    "AppriseSpec",
    "ChatSpec",
    "DiscordSpec",
    "NotificationsConfig",
    "NotifyPatch",
    "NotifySetup",
    "NotifySpec",
    "SlackSpec",
    "notify_kinds",
    "notify_setup",
    "notify_view",
    "public_notify_view",
    "spec_of",
]
