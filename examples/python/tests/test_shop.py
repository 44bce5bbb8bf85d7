import shop


def test_users_with_orders(session):
    users = shop.users_with_orders(session)
    assert len(users) == 10
    assert all(len(u["orders"]) == 3 for u in users)
    assert users[0] == {"name": "user 1", "orders": [100, 101, 102]}


def test_user_summary(session):
    for user_id in (1, 2, 3):
        summary = shop.user_summary(session, user_id)
        assert summary == {"name": f"user {user_id}", "orders": 3, "total_cents": 300 * user_id + 3}


def test_place_order(session):
    shop.place_order(session, 4, 999)
    assert shop.user_summary(session, 4)["orders"] == 4
