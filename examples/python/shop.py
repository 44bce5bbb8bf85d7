"""A tiny shop: users and their orders, on SQLAlchemy 2 with psycopg 3.

The example application that `pgvisor check` runs its test suite against (docs/ci.md). Two
switches stand for code changes a reviewer might miss:

  EXAMPLE_N_PLUS_ONE=1      users_with_orders() forgets selectinload: SQLAlchemy's default lazy
                            loading then runs one SELECT on orders per user (an N+1)
  EXAMPLE_DOUBLE_QUERIES=1  user_summary() expires the session and loads the user again "to be
                            safe": twice the queries for the same answer
"""

import os
from datetime import datetime, timezone
from typing import List

from sqlalchemy import ForeignKey, String, create_engine, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    # SQLAlchemy's default loader strategy (lazy="select"): one query per user on first access.
    orders: Mapped[List["Order"]] = relationship(back_populates="user", order_by="Order.id")


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    total_cents: Mapped[int]
    placed_at: Mapped[datetime]
    user: Mapped[User] = relationship(back_populates="orders")


def switched_on(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def engine_from_env(**kwargs) -> Engine:
    """DATABASE_URL when set (postgres:// or postgresql://), else libpq's PGHOST, PGPORT, PGUSER..."""
    url = make_url(os.environ.get("DATABASE_URL") or "postgresql://")
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, **kwargs)


def create_schema(engine: Engine) -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)


def seed(session: Session, users: int = 10, orders_per_user: int = 3) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for u in range(1, users + 1):
        user = User(name=f"user {u}")
        user.orders = [Order(total_cents=100 * u + o, placed_at=now) for o in range(orders_per_user)]
        session.add(user)
    session.commit()


def users_with_orders(session: Session) -> list:
    """Every user with their orders: the page that lists customers."""
    query = select(User).order_by(User.id)
    if not switched_on("EXAMPLE_N_PLUS_ONE"):
        # One more query for the orders of all users, instead of one per user.
        query = query.options(selectinload(User.orders))
    return [
        {"name": user.name, "orders": [order.total_cents for order in user.orders]}
        for user in session.scalars(query)
    ]


def user_summary(session: Session, user_id: int) -> dict:
    """A user's name, order count and total spent."""
    user = session.get(User, user_id)
    if switched_on("EXAMPLE_DOUBLE_QUERIES"):
        session.expire_all()
        user = session.get(User, user_id)
    count, total = session.execute(
        select(func.count(Order.id), func.coalesce(func.sum(Order.total_cents), 0)).where(Order.user_id == user_id)
    ).one()
    return {"name": user.name, "orders": count, "total_cents": total}


def place_order(session: Session, user_id: int, total_cents: int) -> int:
    order = Order(user_id=user_id, total_cents=total_cents, placed_at=datetime.now(timezone.utc).replace(tzinfo=None))
    session.add(order)
    session.commit()
    return order.id
