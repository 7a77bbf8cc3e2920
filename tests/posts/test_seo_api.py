"""SEO metrics through the API: computed on save, shown in the post, served on their own."""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import update

from herald.posts.models import Post
from tests.conftest import Account, MakeAccount, SessionFactory
from tests.posts.test_api import create

EXCERPT = "A walk through the new bicycle lanes and what they change for the people who ride."


def test_seo_is_computed_on_create_and_shown(client: TestClient, account: Account) -> None:
    post = create(
        client,
        account,
        title="Bicycle lanes",
        body="## Lanes\n\nThe lanes are wide. ![](lane.png)",
        excerpt=EXCERPT,
        keywords=[" lanes ", "lanes", "safety"],
        short_body="New lanes!",
        language="en-GB",
    )
    assert post["keywords"] == ["lanes", "safety"]  # cleaned like tags
    assert post["short_body"] == "New lanes!"
    assert post["language"] == "en-GB"
    seo = post["seo"]
    assert seo["word_count"] == 5
    assert seo["keyword_occurrences"] == {"lanes": 2, "safety": 0}
    assert seo["images"] == {"total": 1, "with_alt": 0, "alt_coverage": 0.0}
    assert {w["code"] for w in seo["warnings"]} >= {"keyword_missing", "images_missing_alt"}
    assert datetime.fromisoformat(seo["computed_at"])

    served = client.get(f"/api/v1/posts/{post['id']}/seo", headers=account.headers)
    assert served.status_code == 200
    assert served.json() == {**seo, "post_id": post["id"]}


def test_tags_stand_in_for_missing_keywords(client: TestClient, account: Account) -> None:
    post = create(client, account, body="Rust and more rust.", tags=["rust"])
    assert post["keywords"] == []
    assert post["seo"]["keywords"] == ["rust"]
    assert post["seo"]["keyword_occurrences"] == {"rust": 2}


def test_seo_is_recomputed_when_what_it_measures_changes(
    client: TestClient, account: Account
) -> None:
    post = create(client, account, title="Short", body="One two three.")
    url = f"/api/v1/posts/{post['id']}"
    first = post["seo"]

    # Not measured: the metrics (and when they were computed) stay.
    same = client.patch(url, json={"short_body": "x"}, headers=account.headers).json()
    assert same["seo"] == first

    longer = client.patch(
        url, json={"body": "One two three four five.", "title": "T" * 70}, headers=account.headers
    ).json()["seo"]
    assert longer["word_count"] == 5
    assert longer["title_length"] == 70
    assert "title_too_long" in {w["code"] for w in longer["warnings"]}
    assert longer["computed_at"] >= first["computed_at"]

    for change, check in (
        ({"keywords": ["four"]}, lambda s: s["keyword_occurrences"] == {"four": 1}),
        ({"excerpt": EXCERPT}, lambda s: s["meta_description_length"] == len(EXCERPT)),
        ({"language": "pl"}, lambda s: s["flesch_reading_ease"] is None),
        ({"tags": ["five"], "keywords": []}, lambda s: s["keywords"] == ["five"]),
    ):
        seo = client.patch(url, json=change, headers=account.headers).json()["seo"]
        assert check(seo), (change, seo)
    assert client.get(f"{url}/seo", headers=account.headers).json()["keywords"] == ["five"]


def test_a_post_without_metrics_is_measured_when_asked(
    client: TestClient, account: Account, db: SessionFactory
) -> None:
    post = create(client, account, body="Some words here.")
    with db() as session:  # a row saved before SEO metrics existed
        session.execute(update(Post).where(Post.title == "Hello").values(seo=None))
    assert client.get(f"/api/v1/posts/{post['id']}", headers=account.headers).json()["seo"] is None

    served = client.get(f"/api/v1/posts/{post['id']}/seo", headers=account.headers).json()
    assert served["word_count"] == 3
    assert served["post_id"] == post["id"]
    # A read stores nothing; the next save does.
    url = f"/api/v1/posts/{post['id']}"
    assert client.get(url, headers=account.headers).json()["seo"] is None
    saved = client.patch(url, json={"short_body": "x"}, headers=account.headers).json()
    assert saved["seo"]["word_count"] == 3


def test_validation(client: TestClient, account: Account) -> None:
    def refused(**fields: object) -> str:
        response = client.post(
            "/api/v1/posts", json={"title": "t", **fields}, headers=account.headers
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        return response.text

    assert "keywords cannot be empty" in refused(keywords=[" "])
    assert "keyword" in refused(keywords=[f"k{i}" for i in range(21)])
    assert "short_body" in refused(short_body="x" * 501)
    assert "language is a language tag such as en, de or pt-BR" in refused(language="english!")
    assert "language" in refused(language="en-" + "x" * 20)
    post = create(client, account, language="pt_BR")
    assert post["language"] == "pt-BR"


def test_other_workspace_gets_404(client: TestClient, make_account: MakeAccount) -> None:
    mine = make_account("me@example.com", workspace="one")
    theirs = make_account("them@example.com", workspace="two")
    post = create(client, mine)
    for who, status in ((theirs, 404), (mine, 200)):
        response = client.get(f"/api/v1/posts/{post['id']}/seo", headers=who.headers)
        assert response.status_code == status
    missing = client.get(
        "/api/v1/posts/00000000-0000-0000-0000-000000000000/seo", headers=mine.headers
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
