"""HTTP control routes of the Slack sandbox (`/_sandbox/...`), for a separate process: the
demo, a benchmark, a browser test. Each mirrors a `SlackSandbox` method; bodies are JSON and
answers are `{"ok": true, "result": ...}`.

- POST /_sandbox/workspaces: team_id, team_name, bot_token, signing_secret, app_token?,
  scopes?, bot_user_id?, bot_id?, app_id?, bot_name? → add_workspace
- POST /_sandbox/users: user_id, name, real_name?, display_name?, locale?, team_id? → add_user
- POST /_sandbox/channels: channel_id, name, kind?, members?, shared?, bot_is_member?
  → add_channel
- POST /_sandbox/files: user_id, name, mime, data (base64) → add_file, answers the file object
- POST /_sandbox/events_url: url, team_id? → set_events_url
- POST /_sandbox/say: user, channel, text, thread_ts? → say, answers the payload
- POST /_sandbox/edit: channel, ts, text · POST /_sandbox/delete: channel, ts
- POST /_sandbox/react: user, channel, ts, reaction, added?
- POST /_sandbox/fail: method, status?, error?, retry_after?, times?, drop? → fail
- POST /_sandbox/disconnect: app_id?, reason? → Socket Mode `disconnect`, then close
- POST /_sandbox/demo: events_url? → seed the demo workspace (sandbox_demo.seed_demo)
- POST /_sandbox/demo/play: delay? → the demo customers start writing
- GET /_sandbox/state → posts sent, event deliveries, socket acks
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from connectors.slack.sandbox import SlackSandbox


def add_control_routes(app: web.Application, sandbox: SlackSandbox) -> None:
    async def body(request: web.Request) -> dict[str, Any]:
        data = await request.json() if request.can_read_body else {}
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="a JSON object is expected")
        return data

    def ok(value: Any = None) -> web.Response:
        return web.json_response({"ok": True, "result": value})

    async def workspaces(request: web.Request) -> web.Response:
        data = await body(request)
        ws = sandbox.add_workspace(**data)
        return ok({"team_id": ws.team_id, "app_id": ws.app_id})

    async def users(request: web.Request) -> web.Response:
        data = await body(request)
        return ok(sandbox.add_user(data.pop("user_id"), data.pop("name"), **data).id)

    async def channels(request: web.Request) -> web.Response:
        data = await body(request)
        return ok(sandbox.add_channel(data.pop("channel_id"), data.pop("name"), **data).id)

    async def files(request: web.Request) -> web.Response:
        data = await body(request)
        file = sandbox.add_file_b64(data["user_id"], data["name"], data["mime"], data["data"])
        return ok(sandbox.state.file_object(file, sandbox.base_url))

    async def events_url(request: web.Request) -> web.Response:
        data = await body(request)
        sandbox.set_events_url(data.get("url"), data.get("team_id"))
        return ok()

    async def say(request: web.Request) -> web.Response:
        data = await body(request)
        return ok(await sandbox.say(data["user"], data["channel"], data["text"],
                                    thread_ts=data.get("thread_ts")))

    async def edit(request: web.Request) -> web.Response:
        data = await body(request)
        return ok(await sandbox.edit(data["channel"], data["ts"], data["text"]))

    async def delete(request: web.Request) -> web.Response:
        data = await body(request)
        return ok(await sandbox.delete(data["channel"], data["ts"]))

    async def react(request: web.Request) -> web.Response:
        data = await body(request)
        return ok(await sandbox.react(data["user"], data["channel"], data["ts"],
                                      data["reaction"], added=bool(data.get("added", True))))

    async def fail(request: web.Request) -> web.Response:
        data = await body(request)
        sandbox.fail(data.pop("method"), **data)
        return ok()

    async def disconnect(request: web.Request) -> web.Response:
        data = await body(request)
        app_id = data.get("app_id") or sandbox.workspace().app_id
        await sandbox.hub.disconnect(app_id, data.get("reason", "refresh_requested"))
        return ok()

    async def demo(request: web.Request) -> web.Response:
        from connectors.slack.sandbox_demo import seed_demo

        data = await body(request)
        return ok(seed_demo(sandbox, events_url=data.get("events_url")))

    async def demo_play(request: web.Request) -> web.Response:
        from connectors.slack.sandbox_demo import play_demo

        data = await body(request)
        sandbox._spawn(play_demo(sandbox, delay=float(data.get("delay", 2.0))))
        return ok()

    async def state(request: web.Request) -> web.Response:
        return ok(sandbox.snapshot())

    for path, handler in (("workspaces", workspaces), ("users", users),
                          ("channels", channels), ("files", files),
                          ("events_url", events_url), ("say", say), ("edit", edit),
                          ("delete", delete), ("react", react), ("fail", fail),
                          ("disconnect", disconnect), ("demo", demo),
                          ("demo/play", demo_play)):
        app.router.add_post(f"/_sandbox/{path}", handler)
    app.router.add_get("/_sandbox/state", state)
