"""A stateful fake of the OneSignal REST API, served by uvicorn on 127.0.0.1.

    from tests.fakes.onesignal import FakeOneSignal
    with FakeOneSignal() as fake:           # or the `fake_onesignal` pytest fixture
        client = OneSignalClient(base_url=fake.url, api_key=fake.app.rest_api_key, ...)
        fake.faults.statuses([429], path="/notifications", retry_after=0.1)

It serves the 37 operations of OneSignal API v1.2.2 plus get_segments, view_templates,
view_template and count-unsaved from the current API, checks keys and app scoping, keeps
notifications, users, segments, players and templates, and takes fault injection per test.
`python -m tests.fakes.onesignal --port 8080` runs it by hand.
"""

from tests.fakes.onesignal.faults import Faults, Hold
from tests.fakes.onesignal.records import FakeApp, RecordedRequest
from tests.fakes.onesignal.routes import ROUTES
from tests.fakes.onesignal.server import FakeOneSignal

__all__ = ["ROUTES", "FakeApp", "FakeOneSignal", "Faults", "Hold", "RecordedRequest"]
