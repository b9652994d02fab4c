"""Front matter's embedding rules hold at the app's own host, in a real browser: a space with
`disable_embedding: true` is refused by Chromium inside another site's iframe (the CSP's
frame-ancestors names only the platform), while the platform's own space page still frames it;
`custom_headers` reach the app's responses through Caddy."""

from django.conf import settings

from spacedock.spaces.models import Build, Space
from tests.browser import outside_site
from tests.runner_fixtures import deployed, wait_for


def test_disable_embedding_is_enforced_by_the_browser(runner, proxy, images, server, browser, tmp_path):
    framed = deployed("ada", "framed", images.hello)
    closed = deployed("ada", "closed", images.hello, disable_embedding=True)
    # The config each build's push recorded (README front matter, parsed once).
    corp = {"sdk": "gradio", "custom_headers": {"cross-origin-resource-policy": "same-site"}}
    Build.objects.filter(pk=framed.deployed_build_id).update(config=corp)
    Build.objects.filter(pk=closed.deployed_build_id).update(
        config={"sdk": "gradio", "disable_embedding": True}
    )
    # As after a push: the space page shows the app for the head it has.
    Space.objects.filter(pk=closed.pk).update(head_sha=closed.deployed_build.commit_sha)
    runner.converge()
    wait_for(lambda: runner.converge() or all(s.stage == "RUNNING" for s in Space.objects.all()), 120)

    # What the browser is told, at each host, through Caddy.
    rule = proxy.get(closed.host).headers["Content-Security-Policy"]
    assert rule == f"frame-ancestors {settings.SITE_URL.rstrip('/')}", rule
    opened = proxy.get(framed.host)
    assert opened.headers["Cross-Origin-Resource-Policy"] == "same-site"
    assert "Content-Security-Policy" not in opened.headers

    url, site = outside_site(
        tmp_path,
        f'<iframe id="framed" src="{proxy.url(framed)}"></iframe>'
        f'<iframe id="closed" src="{proxy.url(closed)}"></iframe>',
    )
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        # The control: the same app, without the rule, draws its button inside the paper.
        page.frame_locator("#framed").get_by_role("button", name="Greet").wait_for(timeout=60_000)
        # Chromium refused the other frame: an error page in its place, no app.
        refused = page.query_selector("#closed").content_frame()
        wait_for(lambda: refused.url.startswith("chrome-error://"), 30, what="the refused frame")
        assert page.frame_locator("#closed").get_by_role("button", name="Greet").count() == 0

        # The platform's own space page is the one place that may frame it.
        own = context.new_page()
        own.goto(f"{settings.SITE_URL}/ada/closed")
        own.frame_locator("iframe#app").get_by_role("button", name="Greet").wait_for(timeout=60_000)
    finally:
        context.close()
        site.shutdown()
