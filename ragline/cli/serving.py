"""``ragline serve``, ``ragline chat`` and ``ragline model prepare``."""

from __future__ import annotations

from typing import Annotated

import typer

from ragline.cli.app import CollectionOpt, app, collection_name, console, err_console, fail
from ragline.cli.app import settings as load


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: api.host")] = None,
    port: Annotated[int | None, typer.Option(help="default: api.port")] = None,
) -> None:
    """Serve the HTTP API (OpenAI-compatible chat with citations) with the embedded engine."""
    from ragline.generate.models import ModelNotPreparedError, is_prepared

    settings = load()
    try:
        prepared = is_prepared(settings.generation.model, settings.models_dir)
    except ValueError as exc:
        fail(str(exc))
    if not prepared:
        fail(
            f"generation model {settings.generation.model!r} is not prepared in "
            f"{settings.models_dir}: run `ragline model prepare` first"
        )
    from ragline.api.server import serve as run_server

    try:
        run_server(settings, host, port)
    except ModelNotPreparedError as exc:
        fail(str(exc))


@app.command()
def chat(
    question: Annotated[
        str | None, typer.Argument(help="ask once and exit; without it, a conversation")
    ] = None,
    collection: CollectionOpt = None,
    url: Annotated[str | None, typer.Option(help="default: http://<api.host>:<api.port>")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="RAGLINE_API_KEY")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="answer length limit")] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the server to start")] = 0,
) -> None:
    """Ask a running `ragline serve` questions; answers stream, cited sources follow."""
    from ragline.api.client import ChatClient, ChatError, Reply, format_source

    settings = load()
    name = collection_name(settings, collection)
    client = ChatClient(url or f"http://{settings.api.host}:{settings.api.port}", api_key)
    if wait and not client.wait_ready(wait):
        fail(f"no server answered at {client.base_url} within {wait:.0f} s")
    history: list[dict[str, str]] = []
    try:
        while True:
            asked = question
            if asked is None:
                try:
                    asked = console.input("[bold]you>[/] ").strip()
                except (EOFError, KeyboardInterrupt):
                    console.print()
                    return
                if asked.lower() in {"exit", "quit", ":q"}:
                    return
                if not asked:
                    continue
            messages = [*history, {"role": "user", "content": asked}]
            reply = Reply()
            try:
                for piece in client.stream(messages, name, reply, max_tokens):
                    console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
            except ChatError as exc:
                console.print()
                if question is not None:
                    fail(str(exc))
                err_console.print(f"[bold red]error:[/] {exc}")
                continue
            console.print()
            # The cited sources; when the answer cites none, those its sentences match;
            # failing that, the ones it was given.
            if reply.cited:
                shown, title = reply.cited, "sources cited"
            elif reply.attributed:
                shown, title = reply.attributed, "sources the answer draws on (not cited by number)"
            else:
                shown, title = reply.sources, "sources given (none cited)"
            if shown:
                console.print(f"[bold]{title}[/]")
            for source in shown:
                console.print("  " + format_source(source), markup=False, highlight=False)
            if question is not None:
                return
            history += [messages[-1], {"role": "assistant", "content": reply.text}]
    finally:
        client.close()


model_app = typer.Typer(no_args_is_help=True, help="the generation model")
app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare(
    force: Annotated[bool, typer.Option(help="convert again even if already prepared")] = False,
) -> None:
    """Convert the embedded GGUF model into a checkpoint vLLM loads (once; cached)."""
    from ragline.generate.models import (
        BUILTIN_PREFIX,
        ModelNotPreparedError,
        is_prepared,
        prepare_model,
    )

    settings = load()
    name = settings.generation.model
    if not name.startswith(BUILTIN_PREFIX):
        console.print(f"{name} is loaded by vLLM directly; nothing to prepare")
        return
    if is_prepared(name, settings.models_dir) and not force:
        console.print(f"{name}: already prepared")
        return
    try:
        with console.status(f"converting {name} (GGUF -> float32 checkpoint)"):
            path = prepare_model(name, settings.models_dir, force=force)
    except (ModelNotPreparedError, ValueError) as exc:
        fail(str(exc))
    console.print(f"{name}: prepared at {path}")
