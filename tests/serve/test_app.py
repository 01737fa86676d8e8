"""The HTTP API, in process (FastAPI's TestClient), against the library's own answers."""

from __future__ import annotations

import json
import threading
import warnings

import numpy as np
import pytest
from fastapi.testclient import TestClient

import mfrec
from mfrec.data.ratings import Ratings
from mfrec.serve.app import ServeConfig, create_app
from mfrec.serve.schemas import MAX_N, MAX_PAIRS

KEY = "k" * 32


def _client(model_path, store_url, **config):
    app = create_app(ServeConfig(str(model_path), store_url, **config))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(small_model_path, tmp_path):
    with _client(small_model_path, f"sqlite:///{tmp_path / 'fb.sqlite'}") as c:
        yield c


@pytest.fixture
def model(small_model_path):
    return mfrec.load(small_model_path)


def _ids(body):
    return [entry["item"] for entry in body["items"]]


def _scores(body):
    return np.array([entry["score"] for entry in body["items"]])


def test_known_user_recommendations_are_the_models(client, model):
    body = client.get("/users/7/recommendations", params={"n": 12}).json()
    items, scores = model.recommend(7, n=12)
    assert body["user"] == 7 and body["feedback_used"] is False
    assert _ids(body) == items.tolist()
    np.testing.assert_allclose(_scores(body), scores, rtol=1e-6)
    assert body["items"][0]["title"] == f"Item {items[0]} <b>bold</b> & <script>x()</script>"
    # a string id is the same user
    assert client.get("/users/%207%20/recommendations", params={"n": 12}).json() == body


def test_allow_and_deny_lists(client, model):
    full = _ids(client.get("/users/3/recommendations", params={"n": 20}).json())
    denied = full[:5]
    body = client.get(
        "/users/3/recommendations", params={"n": 10, "exclude": ",".join(map(str, denied))}
    ).json()
    assert _ids(body) == full[5:15]
    allow = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    seen = set(model.items_.take(model.seen_items[model.users_.index([3])[0]].indices).tolist())
    body = client.get(
        "/users/3/recommendations", params={"n": 4, "items": ",".join(map(str, allow))}
    ).json()
    expected = [i for i in allow if i not in seen]
    predicted = model.predict(3, expected)
    order = np.argsort(-predicted, kind="stable")[:4]
    assert _ids(body) == [expected[k] for k in order]
    np.testing.assert_allclose(_scores(body), predicted[order], rtol=1e-6)
    # exclude_seen=false lets rated items back in
    body = client.get(
        "/users/3/recommendations", params={"n": 3, "items": "1,2,3", "exclude_seen": "false"}
    ).json()
    assert sorted(_ids(body)) == [1, 2, 3]


def test_anonymous_fold_in_is_recommend_for_ratings(client, model):
    ratings = {"5": 5, "17": 4.5, "40": 1, "99999": 3}
    body = client.post("/recommendations", json={"ratings": ratings, "n": 8}).json()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items, scores = model.recommend_for_ratings({5: 5, 17: 4.5, 40: 1, 99999: 3}, n=8)
    assert _ids(body) == items.tolist()
    np.testing.assert_allclose(_scores(body), scores, rtol=1e-5)
    assert body["ignored_items"] == [99999]
    body = client.post(
        "/recommendations", json={"ratings": ratings, "n": 8, "exclude": [int(items[0]), "999"]}
    ).json()
    assert _ids(body)[:7] == items[1:].tolist()


def test_similar_items_and_predict(client, model):
    body = client.get("/items/12/similar", params={"n": 5}).json()
    items, scores = model.similar_items(12, n=5)
    assert body["item"] == 12 and _ids(body) == items.tolist()
    np.testing.assert_allclose(_scores(body), scores, rtol=1e-6)
    assert body["title"].startswith("Item 12 ")
    pairs = [{"user": 1, "item": 2}, {"user": "4", "item": 9}, {"user": 10**6, "item": 3}]
    body = client.post("/predict", json={"pairs": pairs}).json()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.predict([1, 4, 10**6], [2, 9, 3], clip=True)
    np.testing.assert_allclose([p["rating"] for p in body["predictions"]], expected, rtol=1e-9)
    assert [p["fallback"] for p in body["predictions"]] == [False, False, True]


def test_search_items(client):
    hits = client.get("/items", params={"q": "ITEM 11"}).json()["items"]
    assert [h["item"] for h in hits] == [11, *range(110, 120)]
    assert client.get("/items", params={"q": "no such title"}).json() == {"items": []}


def test_feedback_is_folded_in_like_partial_fit(store_url, small_model_path, model):
    """After feedback, the user's list is what partial_fit + recommend gives: the whole
    history (training + feedback, the latest rating of an item wins) folded in."""
    user = 11
    rated = model.items_.take(model.seen_items[model.users_.index([user])[0]].indices)
    feedback = [
        {"user": user, "item": int(rated[0]), "rating": 1},  # overrides a training rating
        {"user": user, "item": 50, "rating": 5},
        {"user": user, "item": 51, "rating": 4},
        {"user": user, "item": 50, "rating": 2},  # the latest of a pair wins
    ]
    with _client(small_model_path, store_url) as client:
        before = client.get(f"/users/{user}/recommendations", params={"n": 10}).json()
        answer = client.post("/feedback", json={"ratings": feedback})
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == 4 and answer.json()["new_users"] == []
        after = client.get(f"/users/{user}/recommendations", params={"n": 10}).json()
        history = client.get(f"/users/{user}/feedback").json()
        new_user = client.post(
            "/feedback",
            json={"ratings": [{"user": 5000, "item": 3, "rating": 5, "timestamp": 12}]},
        ).json()
        fresh = client.get("/users/5000/recommendations", params={"n": 6}).json()
        predicted = client.post("/predict", json={"pairs": [{"user": user, "item": 60}]}).json()
    assert after["feedback_used"] and after["items"] != before["items"]
    assert [(r["item"], r["rating"]) for r in history["ratings"]] == [
        (f["item"], f["rating"]) for f in feedback
    ]
    updated = mfrec.load(small_model_path)
    updated.partial_fit(
        Ratings.from_arrays(
            [user] * 3, [int(rated[0]), 51, 50], [1.0, 4.0, 2.0], duplicates="error"
        )
    )
    items, scores = updated.recommend(user, n=10)
    assert _ids(after) == items.tolist()
    np.testing.assert_allclose(_scores(after), scores, rtol=1e-5)
    np.testing.assert_allclose(
        predicted["predictions"][0]["rating"], updated.predict(user, 60, clip=True)[0], rtol=1e-6
    )
    assert new_user["new_users"] == [5000]
    folded = mfrec.load(small_model_path).fold_in(5000, {3: 5.0})
    items, scores = folded.recommend(5000, n=6)
    assert _ids(fresh) == items.tolist()
    np.testing.assert_allclose(_scores(fresh), scores, rtol=1e-5)


def test_unknown_items_in_feedback_are_stored_and_reported(client, model):
    answer = client.post(
        "/feedback",
        json={
            "ratings": [
                {"user": 2, "item": 777777, "rating": 4},
                {"user": 2, "item": 5, "rating": 3},
            ]
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["unknown_items"] == [777777] and "retrain" in body["note"]
    history = client.get("/users/2/feedback").json()["ratings"]
    assert [r["item"] for r in history] == [777777, 5]
    # the known item is folded in, the unknown one waits for a retrain
    assert client.get("/users/2/recommendations").json()["feedback_used"]


BAD_REQUESTS = [
    ("get", "/users/1/recommendations?n=0", None, 422, "n"),
    ("get", f"/users/1/recommendations?n={MAX_N + 1}", None, 422, "n"),
    ("get", "/users/1/recommendations?n=ten", None, 422, "n"),
    ("get", "/users/1/recommendations?exclude_seen=maybe", None, 422, "exclude_seen"),
    ("get", "/users/abc/recommendations", None, 422, "user"),
    ("get", "/users/123456/recommendations", None, 404, "user"),
    ("get", "/users/1/recommendations?items=1,x", None, 422, "items"),
    ("get", "/users/1/recommendations?items=1,99999", None, 404, "items"),
    ("get", "/items/99999/similar", None, 404, "item"),
    ("get", "/items/1.5/similar", None, 422, "item"),
    ("get", "/items/1/similar?n=-3", None, 422, "n"),
    ("get", "/items?q=", None, 422, "q"),
    ("post", "/recommendations", {"ratings": {"1": "five"}}, 422, "ratings.1"),
    ("post", "/recommendations", {"ratings": {"x": 5}}, 422, "ratings"),
    ("post", "/recommendations", {"ratings": {"1": 5}, "n": 0}, 422, "n"),
    ("post", "/recommendations", {"ratings": {"1": 5}, "extra": 1}, 422, "extra"),
    ("post", "/recommendations", {"n": 3}, 422, "ratings"),
    ("post", "/predict", {"pairs": []}, 422, "pairs"),
    ("post", "/predict", {"pairs": [{"user": 1}]}, 422, "pairs[0].item"),
    ("post", "/predict", {"pairs": [{"user": True, "item": 1}]}, 422, "pairs[0].user"),
    ("post", "/predict", {"pairs": [{"user": 1, "item": 2}] * (MAX_PAIRS + 1)}, 422, "pairs"),
    ("post", "/feedback", {"ratings": []}, 422, "ratings"),
    ("post", "/feedback", {"ratings": [{"user": 1, "item": 2}]}, 422, "ratings[0].rating"),
    ("post", "/feedback", {"ratings": [{"user": 1, "item": 2, "rating": 9}]}, 422,
     "ratings[0].rating"),
    ("post", "/feedback", {"ratings": [{"user": 1, "item": 2, "rating": 3, "timestamp": -1}]}, 422,
     "ratings[0].timestamp"),
    ("post", "/feedback", {"ratings": [{"user": 1, "item": [2], "rating": 3}]}, 422,
     "ratings[0].item"),
    ("post", "/feedback", {"ratings": [{"user": "u-1", "item": 2, "rating": 3}]}, 422,
     "ratings[0].user"),
    ("post", "/feedback", "not an object", 422, "body"),
    ("delete", "/feedback", None, 405, "method"),
    ("get", "/no/such/endpoint", None, 404, "path"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "payload", "status", "field"), BAD_REQUESTS)
def test_bad_requests_get_json_errors_naming_the_field(client, method, url, payload, status, field):
    kwargs = {} if payload is None else {"json": payload}
    answer = getattr(client, method)(url, **kwargs)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["field"] == field, body
    assert body["error"] and "Traceback" not in answer.text


def test_malformed_bodies_and_size_limits(client, small_model_path, tmp_path):
    for raw in (
        b"{bad json",
        b"",
        b"\xff\xfe",
        b'{"ratings": [{"user": 1, "item": 2, "rating": NaN}]}',
    ):
        answer = client.post("/feedback", content=raw, headers={"content-type": "application/json"})
        assert 400 <= answer.status_code < 500, (raw, answer.text)
        assert answer.json()["field"], answer.text
    assert client.get("/users/1/feedback").json()["ratings"] == []
    with _client(
        small_model_path, f"sqlite:///{tmp_path / 'f.sqlite'}", max_body_bytes=1000
    ) as small:
        big = {"pairs": [{"user": 1, "item": 2}] * 200}
        answer = small.post("/predict", json=big)
        assert answer.status_code == 413 and answer.json()["field"] == "body"

        def chunks():  # no Content-Length: the limit is counted while reading
            for _ in range(20):
                yield b" " * 100

        answer = small.post(
            "/predict", content=chunks(), headers={"content-type": "application/json"}
        )
        assert answer.status_code == 413 and answer.json()["field"] == "body"


def test_api_key_guards_writes_only(small_model_path, tmp_path):
    with _client(small_model_path, f"sqlite:///{tmp_path / 'f.sqlite'}", api_key=KEY) as client:
        row = {"ratings": [{"user": 1, "item": 2, "rating": 3}]}
        assert client.post("/feedback", json=row).status_code == 401
        wrong = client.post("/feedback", json=row, headers={"x-api-key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["field"] == "authorization"
        assert client.post("/admin/reload").status_code == 401
        assert (
            client.post(
                "/feedback", json=row, headers={"authorization": f"Bearer {KEY}"}
            ).status_code
            == 200
        )
        assert client.post("/feedback", json=row, headers={"x-api-key": KEY}).status_code == 200
        assert client.get("/users/1/recommendations").status_code == 200
        assert len(client.get("/users/1/feedback").json()["ratings"]) == 2


def test_health_metrics_docs(client):
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready").json()
    assert ready["status"] == "ready" and ready["store"] == "sqlite"
    client.get("/users/1/recommendations")
    client.post("/feedback", json={"ratings": [{"user": 1, "item": 2, "rating": 3}] * 3})
    text = client.get("/metrics").text
    recs = '{endpoint="/users/{user}/recommendations",method="GET",status="200"} 1.0'
    assert f"mfrec_requests_total{recs}" in text
    assert "mfrec_feedback_rows_total 3.0" in text
    assert 'mfrec_request_duration_seconds_bucket{endpoint="/feedback"' in text
    assert 'mfrec_model_info{model_class="BiasedMF",path=' in text
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/users/{user}/recommendations", "/recommendations", "/feedback", "/predict"} <= set(
        paths
    )


def test_reload_swaps_atomically_and_refuses_a_corrupt_file(client, small_model_path, tmp_path):
    info = client.get("/model").json()
    corrupt = tmp_path / "corrupt.mfrec"
    data = small_model_path.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    answer = client.post("/admin/reload", json={"path": str(corrupt)})
    assert answer.status_code == 422 and answer.json()["field"] == "path"
    assert client.get("/model").json()["version"] == info["version"]
    assert client.get("/users/1/recommendations").status_code == 200
    not_a_model = tmp_path / "x.mfrec"
    not_a_model.write_text("hello")
    assert client.post("/admin/reload", json={"path": str(not_a_model)}).status_code == 422
    assert client.post("/admin/reload", json={"path": str(tmp_path / "none")}).status_code == 422
    # concurrent requests during reloads: none fails
    from mfrec.data.synthetic import make_ratings
    from mfrec.models import BiasedMF

    other = BiasedMF(n_factors=4, n_epochs=3, random_state=1).fit(
        make_ratings(300, 120, density=0.1, random_state=0).ratings
    )
    other_path = tmp_path / "other.mfrec"
    other.save(other_path)
    failures = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            for url in ("/users/5/recommendations", "/items/3/similar"):
                status = client.get(url).status_code
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for path in (other_path, small_model_path, other_path):
        assert client.post("/admin/reload", json={"path": str(path)}).status_code == 200
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert client.get("/model").json()["n_factors"] == 4
    text = client.get("/metrics").text
    assert 'mfrec_model_reloads_total{result="refused"} 3.0' in text


@pytest.mark.realdata
def test_ml100k_recommendations_and_feedback(ml100k_model_path, tmp_path):
    model = mfrec.load(ml100k_model_path)
    with _client(ml100k_model_path, f"sqlite:///{tmp_path / 'f.sqlite'}") as client:
        body = client.get("/users/196/recommendations", params={"n": 10}).json()
        items, _ = model.recommend(196, n=10)
        assert _ids(body) == items.tolist()
        assert all(entry["title"] for entry in body["items"])
        hits = client.get("/items", params={"q": "star wars"}).json()["items"]
        assert hits[0] == {"item": 50, "title": "Star Wars (1977)"}
        anonymous = client.post("/recommendations", json={"ratings": {"50": 5, "172": 5, "181": 5}})
        assert len(anonymous.json()["items"]) == 10
        stored = client.post(
            "/feedback",
            json={"ratings": [{"user": 196, "item": i, "rating": 5} for i in (50, 172, 181)]},
        )
        assert stored.status_code == 200
        after = client.get("/users/196/recommendations", params={"n": 10}).json()
        assert after["feedback_used"] and not {50, 172, 181} & set(_ids(after))
        assert json.loads(client.get("/users/196/feedback").text)["user"] == 196


def test_stored_ids_of_another_kind_do_not_break_a_user(small_model_path, tmp_path):
    """A store shared with a model of string ids may hold items this model cannot name:
    they are unknown items, shown as stored, ignored by the fold-in."""
    from mfrec.serve.store import Feedback, open_store

    url = f"sqlite:///{tmp_path / 'f.sqlite'}"
    store = open_store(url)
    store.append([Feedback("3", "abc", 4.0, 1), Feedback("3", "7", 5.0, 2)])
    store.close()
    with _client(small_model_path, url) as client:
        body = client.get("/users/3/recommendations").json()
        assert body["feedback_used"] and 7 not in _ids(body)
        items = [r["item"] for r in client.get("/users/3/feedback").json()["ratings"]]
        assert items == ["abc", 7]


def test_a_model_without_fold_in_serves_its_own_users(tmp_path):
    """BayesianMF cannot fold in: its users are ranked by the model itself; visitors get
    409; feedback is stored and its items excluded until a retrain."""
    from mfrec.data.synthetic import make_ratings
    from mfrec.models import BayesianMF

    ratings = make_ratings(120, 60, density=0.15, random_state=3).ratings
    model = BayesianMF(n_factors=4, n_samples=5, burn_in=2, random_state=0).fit(ratings)
    path = tmp_path / "bayes.mfrec"
    model.save(path)
    with _client(path, f"sqlite:///{tmp_path / 'f.sqlite'}") as client:
        assert client.get("/model").json()["supports_fold_in"] is False
        for user in (5, 9, 40):
            body = client.get(f"/users/{user}/recommendations", params={"n": 6}).json()
            items, scores = model.recommend(user, n=6)
            assert _ids(body) == items.tolist()
            np.testing.assert_allclose(_scores(body), scores, rtol=1e-6)
        full = model.recommend(9, n=6)[0].tolist()
        denied = client.get(
            "/users/9/recommendations", params={"n": 4, "exclude": ",".join(map(str, full[:2]))}
        ).json()
        assert _ids(denied) == full[2:6]
        allowed = client.get("/users/9/recommendations", params={"items": "1,2,3,4,5"}).json()
        for entry in allowed["items"]:
            np.testing.assert_allclose(
                entry["score"], model.predict(9, entry["item"])[0], rtol=1e-6
            )
        predicted = client.post("/predict", json={"pairs": [{"user": 9, "item": 3}]}).json()
        np.testing.assert_allclose(
            predicted["predictions"][0]["rating"], model.predict(9, 3, clip=True)[0], rtol=1e-9
        )
        visitor = client.post("/recommendations", json={"ratings": {"1": 5}})
        assert visitor.status_code == 409 and visitor.json()["field"] == "model"
        top = full[0]
        assert (
            client.post(
                "/feedback", json={"ratings": [{"user": 9, "item": top, "rating": 1}]}
            ).status_code
            == 200
        )
        after = client.get("/users/9/recommendations", params={"n": 5}).json()
        assert _ids(after) == full[1:6]


def test_a_model_of_string_ids_serves_its_users_and_items(tmp_path):
    from mfrec.data.synthetic import make_ratings
    from mfrec.models import BiasedMF

    data = make_ratings(80, 40, density=0.3, random_state=4).ratings
    users = np.array([f"u-{v}" for v in data.users.take(data.user_index)], dtype=object)
    items = np.array([f"i {v}" for v in data.items.take(data.item_index)], dtype=object)
    ratings = Ratings.from_arrays(users, items, data.rating)
    model = BiasedMF(n_factors=4, n_epochs=5, random_state=0).fit(ratings)
    path = tmp_path / "strings.mfrec"
    model.save(path)
    with _client(path, f"sqlite:///{tmp_path / 'f.sqlite'}") as client:
        user = str(model.users_.ids[3])
        body = client.get(f"/users/{user}/recommendations", params={"n": 5}).json()
        expected, scores = model.recommend(user, n=5)
        assert body["user"] == user and _ids(body) == expected.tolist()
        np.testing.assert_allclose(_scores(body), scores, rtol=1e-6)
        item = str(model.items_.ids[2])
        body = client.get(f"/items/{item}/similar", params={"n": 4}).json()
        assert _ids(body) == model.similar_items(item, n=4)[0].tolist()
        assert client.get("/users/nobody/recommendations").status_code == 404
        assert client.get("/items/nothing/similar").status_code == 404


def test_top_n_and_similar_items_over_many_items_are_the_models_own(tmp_path):
    """Thousands of items: the ranking's threshold comes from block maxima (a shortcut
    taken only with many items), and must still give exactly the model's lists."""
    from mfrec.data.synthetic import make_ratings
    from mfrec.models import BiasedMF
    from mfrec.serve.live import load_state

    data = make_ratings(200, 3000, density=0.02, random_state=5).ratings
    model = BiasedMF(n_factors=6, n_epochs=4, random_state=0).fit(data)
    path = tmp_path / "wide.mfrec"
    model.save(path)
    state = load_state(path)
    for user in range(0, 200, 9):
        for n in (1, 10, 40, 300):
            index, scores = state.rank(state.user_vector(str(user), user, None, list), n)
            expected, expected_scores = model.recommend(model.users_.ids[user], n=n)
            assert model.items_.take(index).tolist() == expected.tolist()
            np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    for item in range(0, 3000, 97):
        for n in (1, 10, 300):
            index, scores = state.similar(item, n)
            expected, expected_scores = model.similar_items(model.items_.ids[item], n=n)
            assert model.items_.take(index).tolist() == expected.tolist()
            np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)


def test_the_server_keeps_its_long_lived_objects_out_of_the_collector(small_model_path, tmp_path):
    # A full collection over numba's, the framework's and the model's objects stalled the
    # event loop for ~95 ms (the anonymous fold-in's p99): they are frozen at start-up.
    import gc

    before = gc.get_freeze_count()
    with _client(small_model_path, f"sqlite:///{tmp_path / 'fb.sqlite'}") as client:
        assert gc.get_freeze_count() > before
        assert client.get("/health/live").status_code == 200
    assert gc.get_freeze_count() == 0
