"""The app page's review apps panel (the review_apps plugin's blueprint): what it lists, that a
branch name (git allows `<`, `>` and quotes in one) is only ever text, that its Destroy button is
shown by the permission table and needs its CSRF token."""

from __future__ import annotations

import importlib

from paas.plugins import plugins
from paas.services import access, apps
from tests.web.conftest import Site, csrf_token

plugins(set())
review = importlib.import_module("paas_plugins.review_apps.service")
EVIL = 'x/"><img/src=x/onerror=alert(1)>'


def _child(site: Site, branch: str) -> str:
    parent = site.ctx.store.get_app("demo")
    return apps.create_review_app(site.ctx, parent, review.review_name("demo", branch), branch).name  # type: ignore[arg-type]


def test_the_parents_page_lists_its_review_apps_as_text(site: Site) -> None:
    client = site.login()
    assert 'id="review-apps"' not in client.get("/apps/demo").text  # off, and none: no panel
    review.enable(site.ctx, "demo", 7)
    page = client.get("/apps/demo").text
    assert "None yet: <code>git push paas feature-x</code>" in page and "after 7 day(s)" in page
    name = _child(site, EVIL)
    page = client.get("/apps/demo").text
    panel = page[page.index('id="review-apps"') :]
    assert f'data-app="{name}"' in panel and f"http://{name}.localhost:18080" in panel
    assert "&lt;img/src=x/onerror=alert(1)&gt;" in panel and "<img/src" not in page
    assert f'action="/apps/{name}/review-apps/destroy"' in panel  # alice is an admin
    own = client.get(f"/apps/{name}").text
    assert 'The review app of <a href="/apps/demo">demo</a>' in own and "<img/src" not in own
    assert 'id="access"' not in own  # its access is its parent's


def test_destroy_needs_its_csrf_token_and_the_table_s_permission(site: Site) -> None:
    name = _child(site, "feature")
    client = site.login()
    assert client.post(f"/apps/{name}/review-apps/destroy").status_code == 400  # no token
    assert site.ctx.store.get_app(name) is not None
    # bob may not see demo, nor its review app: 404, and nothing changed.
    bob = site.login("bob")
    resp = bob.post(f"/apps/{name}/review-apps/destroy", data={"csrf_token": csrf_token(bob, "/")})
    assert resp.status_code == 404 and site.ctx.store.get_app(name) is not None
    # With view on demo he sees it, without the button; a forged POST is 403.
    access.add_access(site.ctx, "demo", "bob", "view")
    page = bob.get("/apps/demo").text
    assert f'data-app="{name}"' in page and "review-apps/destroy" not in page
    resp = bob.post(f"/apps/{name}/review-apps/destroy", data={"csrf_token": csrf_token(bob, "/")})
    assert resp.status_code == 403 and "you need the &#39;deploy&#39; permission" in resp.text
    assert site.ctx.store.get_app(name) is not None
