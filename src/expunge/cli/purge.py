"""``expunge purge``: list (dry run, the default) or delete (``--yes``) the forget-derived artifacts of a request, of
the request an unlearned run names, of a retired Original, or that no request names (:mod:`expunge.store.purge`)."""

from __future__ import annotations

from typing import Annotated

import typer

from expunge.cli.options import JsonOpt, StoreOpt, emit_json, open_store


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def register(app: typer.Typer) -> None:
    @app.command("purge")
    def purge(
        request: Annotated[str | None, typer.Option("--request", help="a request fingerprint (a record's "
                                                                       "request.fingerprint, or 8+ of its first "
                                                                       "characters)")] = None,
        run: Annotated[str | None, typer.Option("--run", help="an unlearned_key: purge the request it names")] = None,
        original: Annotated[str | None, typer.Option("--original", help="an original_key: the retired Original and "
                                                                        "everything derived from it")] = None,
        unlinked: Annotated[bool, typer.Option("--unlinked", help="forget-derived artifacts no request or Original "
                                                                  "names (shadows, relearn results, unmarked "
                                                                  "manifests)")] = False,
        keep_oracle: Annotated[bool, typer.Option("--keep-oracle", help="keep the request's retrain oracle (its "
                                                                        "weights never saw the forget set)")] = False,
        yes: Annotated[bool, typer.Option("--yes", help="delete (default: only list what would be deleted)")] = False,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Remove forget-derived artifacts: the request's unlearned models, repeated runs and oracle (--request /
        --run), or a retired Original and everything derived from it (--original). Dry run unless --yes."""
        from expunge.store.purge import plans_from

        plan = plans_from({"request": request, "run": run, "original": original, "unlinked": unlinked,
                           "keep_oracle": keep_oracle}, open_store(store, write=yes))
        if yes:
            plan.execute()
        if as_json:
            emit_json(plan.to_json())
            return
        verb = "removed" if yes else "would remove"
        typer.echo(f"{verb} {len(plan.items)} artifact(s), {_size(plan.total_bytes)} from {plan.store.root}"
                   + ("" if yes or not plan.items else " (dry run: --yes deletes)"))
        for item in plan.items:
            typer.echo(f"  {item.kind}/{item.key}  {_size(item.nbytes):>9}  {item.why}")
        for pair in plan.pairs:
            typer.echo(f"warning: the Original {pair['original']} (trained on the forget set) stays beside "
                       f"{pair['child']}: anyone with a copy of both can diff them. Retire it: "
                       f"`{pair['purge']}`", err=True)
        if plan.unlinked:
            typer.echo(f"note: {plan.unlinked} other forget-derived artifact(s) name no request or Original "
                       "(shadows, relearn results, unmarked manifests): `expunge purge --unlinked` lists them",
                       err=True)
