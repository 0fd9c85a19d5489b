"""``pacs-ai serve --demo``: demo users once per role, synthetic studies through DIMSE."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from pacs_ai.archive.schema import Study
from pacs_ai.demo import create_demo_users, send_demo_studies
from pacs_ai.security.roles import Role
from pacs_ai.security.users import authenticate
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.integration


def test_demo_users_and_studies(make_server: ServerFactory) -> None:
    server = make_server()
    created = create_demo_users(server.context)
    assert {user.role for user in created} == set(Role)
    assert create_demo_users(server.context) == []  # existing users are left alone
    with server.context.database.sessions() as session:
        for user in created:
            assert authenticate(session=session, username=user.username, password=user.password)
    sent = send_demo_studies(server.context.settings, server.dimse_port)
    with server.context.database.sessions() as session:
        studies = session.execute(select(func.count()).select_from(Study)).scalar_one()
    assert sent == 4 * 32 + 4
    assert studies == 8


def test_demo_users_are_refused_in_production(make_server: ServerFactory) -> None:
    server = make_server()
    production = server.context.settings.model_copy(update={"environment": "production"})
    context = type(server.context)(**{**server.context.__dict__, "settings": production})
    with pytest.raises(ValueError, match="production"):
        create_demo_users(context)
