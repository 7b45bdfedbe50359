"""Chat notifications: delivery targets whose body is a chat message.

:mod:`~consumers.notify.spec` holds the specs, patch, views and target kinds;
one module per platform (discord, slack, apprise) shapes its message.
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
