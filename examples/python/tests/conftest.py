"""Fixtures for the shop's tests, and the two lines that make `pgvisor check` report per test.

Every statement SQLAlchemy sends carries two sqlcommenter comments: the framework tags that
google-cloud-sqlcommenter writes (db_driver, db_framework), and `test='<pytest node id>'`, which
pgvisor uses as the statement's scope. Statements outside a test (the schema set-up) and those the
driver sends on its own (BEGIN, COMMIT) carry no test tag: they count under the connection's
application_name, "example-shop".
"""

import contextvars
import urllib.parse

import pytest
from google.cloud.sqlcommenter.sqlalchemy.executor import BeforeExecuteFactory
from sqlalchemy import event
from sqlalchemy.orm import Session

import shop

current_test = contextvars.ContextVar("current_test", default=None)


def tag_with_test(conn, cursor, statement, parameters, context, executemany):
    nodeid = current_test.get()
    if nodeid is None:
        return statement, parameters
    # sqlcommenter's encoding: URL-quoted, and '%' doubled because the driver formats parameters.
    value = urllib.parse.quote(nodeid, safe="").replace("%", "%%")
    return f"{statement} /*test='{value}'*/", parameters


@pytest.fixture(scope="session")
def engine():
    engine = shop.engine_from_env(connect_args={"application_name": "example-shop"})
    event.listen(
        engine,
        "before_cursor_execute",
        BeforeExecuteFactory(with_db_driver=True, with_db_framework=True),
        retval=True,
    )
    event.listen(engine, "before_cursor_execute", tag_with_test, retval=True)
    shop.create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def pgvisor_scope(request):
    """Names the running test in every statement it causes, fixtures included."""
    token = current_test.set(request.node.nodeid)
    yield
    current_test.reset(token)


@pytest.fixture
def session(engine, pgvisor_scope):
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE users, orders RESTART IDENTITY")
    with Session(engine) as session:
        shop.seed(session)
        yield session
