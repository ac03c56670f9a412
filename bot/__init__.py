"""PushOps: work your OneSignal push notifications from Slack."""

__version__ = "0.1.0"
