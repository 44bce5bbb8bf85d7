#!/usr/bin/env python3
"""A real SQLAlchemy application for tests/tests/orm_sqlalchemy.rs.

Models User (id, name) and Address (id, user_id -> users.id, email), with a one-to-many
relationship User.addresses, and runs one of three modes against a database:

  setup     create the tables and seed 10 users with 2 addresses each
  lazy      load all users, then touch user.addresses for each one: SQLAlchemy's default lazy
            loading runs one SELECT on addresses per user (the N+1 pgvisor must report)
  selectin  the same with options(selectinload(User.addresses)): one extra SELECT ... IN (...)
            for all users (nothing to report)

Connection: --host, --port, --user, --dbname, the password from PGPASSWORD; --driver psycopg2
(parameters interpolated client-side: simple Query messages) or psycopg (psycopg 3, parameters
bound server-side: Parse/Bind/Execute). sslmode=disable.

Prints one JSON object on stdout: what was loaded, and every statement SQLAlchemy handed the
driver (with its parameters), so a failing test can show exactly what was sent.
"""

import argparse
import json
import os
import sys
from typing import List

from sqlalchemy import ForeignKey, String, create_engine, event, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

USERS = 10
ADDRESSES_PER_USER = 2
APPLICATION_NAME = "sqlalchemy-n-plus-one"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    # The default loader strategy: lazy="select", one query per user on first access.
    addresses: Mapped[List["Address"]] = relationship(back_populates="user", order_by="Address.id")


class Address(Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    email: Mapped[str] = mapped_column(String(100))
    user: Mapped[User] = relationship(back_populates="addresses")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["setup", "lazy", "selectin"])
    parser.add_argument("--driver", choices=["psycopg2", "psycopg"], default="psycopg2")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--dbname", required=True)
    parser.add_argument("--echo", action="store_true", help="SQLAlchemy's echo=True on stderr")
    args = parser.parse_args()

    url = URL.create(
        f"postgresql+{args.driver}",
        username=args.user,
        password=os.environ.get("PGPASSWORD"),
        host=args.host,
        port=args.port,
        database=args.dbname,
        query={"sslmode": "disable", "application_name": APPLICATION_NAME},
    )
    engine = create_engine(url, echo=args.echo)

    sent = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        sent.append({"sql": statement, "parameters": repr(parameters), "executemany": executemany})

    result = {"mode": args.mode, "driver": args.driver}
    if args.mode == "setup":
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            for i in range(1, USERS + 1):
                user = User(name=f"user {i}")
                user.addresses = [
                    Address(email=f"user{i}.{j}@example.com") for j in range(1, ADDRESSES_PER_USER + 1)
                ]
                session.add(user)
            session.commit()
    else:
        query = select(User).order_by(User.id)
        if args.mode == "selectin":
            query = query.options(selectinload(User.addresses))
        with Session(engine) as session:
            users = session.scalars(query).all()
            # Touching the relationship is what runs the lazy loads.
            emails = sum(len(user.addresses) for user in users)
            session.rollback()
        result.update(users=len(users), addresses=emails)
    engine.dispose()
    result["statements"] = sent
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
