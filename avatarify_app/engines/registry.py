"""The engine registry: one ``EngineSpec`` per engine, read by the CLI, ``--engine auto``, the
server and the GUI. Nothing outside an engine's own folder names an engine.

Adding an engine: a subpackage ``engines/<name>/`` whose ``__init__`` defines ``SPEC`` (cheap
to import: the factory imports torch and the networks only when it runs), plus its module
path in ``BUILTIN`` below. The order of ``BUILTIN`` is the order ``--engine auto`` tries.
Tests (and plug-ins) may ``register()`` more specs at run time.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from avatarify_app.config import DEVICE_NAMES, EngineConfig, MotionOptions
from avatarify_app.errors import ConfigError, EngineError

log = logging.getLogger(__name__)

# The built-in engines, in the order ``--engine auto`` tries them (one line per engine).
BUILTIN = (
    "avatarify_app.engines.liveportrait",
    "avatarify_app.engines.fomm",
    "avatarify_app.engines.landmarks",
    "avatarify_app.engines.remote",
)

OPTION_KINDS = ("path", "folder", "text", "secret", "bool", "choice", "float", "int")


@dataclass(frozen=True)
class EngineOption:
    """One engine setting: a command-line flag, a GUI control and a key of ``EngineConfig.options``.

    name:    the key, and the flag ``--name-with-dashes``. Two engines that declare the same
             name share one flag (e.g. ``checkpoint``).
    kind:    one of OPTION_KINDS ("secret" is a text field that is never echoed or logged).
    live:    True when it may change while the engine runs: the engine takes it through
             ``set_controls`` without being rebuilt (a slider in the GUI).
    cli/gui: where it is offered.
    """

    name: str
    kind: str
    default: Any = None
    help: str = ""
    label: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    live: bool = False
    cli: bool = True
    gui: bool = True
    minimum_text: str = ""  # what the minimum of a number means, shown instead of it (e.g. "driver")

    def __post_init__(self) -> None:
        if self.kind not in OPTION_KINDS:
            raise ValueError(f"option {self.name!r}: unknown kind {self.kind!r}")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def coerce(self, value: Any) -> Any:
        """``value`` checked against the kind, range and choices; ConfigError saying what fits."""
        if value is None:
            return None
        try:
            if self.kind == "bool":
                if isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                out: Any = bool(value)
            elif self.kind == "float":
                out = float(value)
                if out != out or out in (float("inf"), float("-inf")):
                    raise ValueError("not a finite number")
            elif self.kind == "int":
                out = int(value)
            else:
                out = str(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{self.flag}: {value!r} is not a valid {self.kind} ({err}).") from err
        if self.choices and out not in self.choices:
            raise ConfigError(f"{self.flag}: {out!r} is not one of {', '.join(map(str, self.choices))}.")
        if self.kind in ("float", "int"):
            if (self.minimum is not None and out < self.minimum) or (self.maximum is not None and out > self.maximum):
                raise ConfigError(f"{self.flag}: {out} is outside {self.minimum}..{self.maximum}.")
        return out


@dataclass(frozen=True)
class Availability:
    """What ``EngineSpec.detect`` found: whether the engine can be built here, and why (not).

    ok:     its needs are met (weights found, server configured, ...).
    reason: one line for the user, e.g. "checkpoint checkpoints/vox-adv-cpk.pth.tar" or
            "no checkpoint in checkpoints/ (see checkpoints/README.md)".
    auto:   ``--engine auto`` may pick it (False e.g. when it cannot run live on this device).
    """

    ok: bool
    reason: str
    auto: bool = True


@dataclass(frozen=True)
class EngineSpec:
    """Everything the program needs to know about an engine, without importing it.

    factory(config, motion) -> Engine builds it (imports torch and its networks lazily).
    detect(config) -> Availability says whether its needs are met; it must be cheap (no
    network loading; it may read file headers) and may import torch only when
    ``config.device`` has to be resolved to answer.
    bench_factory(config, motion) -> Engine builds it at full size with random weights, for
    ``bench`` on machines without the weights (None: bench needs what ``detect`` needs).
    half: it has a half-precision path (used on CUDA; ``--half/--no-half``).
    local: it animates on this machine (False: it is the client of an engine elsewhere, which
    ``serve`` cannot host).
    controls: names of its options the GUI shows as live controls (sliders, pickers).
    """

    name: str
    display_name: str
    summary: str
    factory: Callable[[EngineConfig, MotionOptions], Any]
    detect: Callable[[EngineConfig], Availability]
    options: tuple[EngineOption, ...] = ()
    bench_factory: Callable[[EngineConfig, MotionOptions], Any] | None = None
    half: bool = False
    auto: bool = True
    local: bool = True

    def option(self, name: str) -> EngineOption | None:
        return next((o for o in self.options if o.name == name), None)


@dataclass(frozen=True)
class Choice:
    """The engine ``--engine auto`` (or the user) chose, and the reasons, one per engine tried."""

    spec: EngineSpec
    config: EngineConfig
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.spec.name

    def explain(self) -> str:
        return "; ".join(self.reasons)


class Registry:
    """The engine specs by name. The built-in ones load on first use (importing only their
    ``__init__``, which is cheap); ``register`` adds more."""

    def __init__(self, builtin: tuple[str, ...] = BUILTIN) -> None:
        self._builtin = builtin
        self._specs: dict[str, EngineSpec] = {}
        self._loaded = False
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            loaded: dict[str, EngineSpec] = {}
            for module in self._builtin:
                spec = importlib.import_module(module).SPEC
                loaded[spec.name] = spec
            loaded.update(self._specs)  # registered before the first use
            self._specs = loaded
            self._loaded = True

    def register(self, spec: EngineSpec) -> Callable[[], None]:
        """Add ``spec`` (after the built-in ones); returns the function that removes it again."""
        self._load()
        if spec.name in ("auto", "") or not spec.name.isidentifier():
            raise ValueError(f"bad engine name {spec.name!r}")
        with self._lock:
            if spec.name in self._specs:
                raise ValueError(f"an engine named {spec.name!r} is registered already")
            self._specs[spec.name] = spec
        return lambda: self.unregister(spec.name)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._specs.pop(name, None)

    def specs(self) -> list[EngineSpec]:
        self._load()
        with self._lock:
            return list(self._specs.values())

    def __iter__(self) -> Iterator[EngineSpec]:
        return iter(self.specs())

    def names(self) -> list[str]:
        return [s.name for s in self.specs()]

    def get(self, name: str) -> EngineSpec:
        self._load()
        spec = self._specs.get(name)
        if spec is None:
            raise ConfigError(f"Unknown engine {name!r}.", f"Use auto or one of: {', '.join(self.names())}.")
        return spec

    def fallback(self) -> EngineSpec:
        """The engine to fall back on when another cannot be built: the last one ``--engine
        auto`` would try whose needs are met with no options at all (the built-in engine, which
        needs no weights, comes last in ``BUILTIN``)."""
        for spec in reversed(self.specs()):
            if spec.auto and spec.detect(EngineConfig(name=spec.name)).ok:
                return spec
        raise EngineError("No engine can run here.", "Install the app's requirements again (`make setup`).")

    def options(self) -> list[tuple[EngineOption, list[EngineSpec]]]:
        """Every option once, with the engines that declare it (in registry order)."""
        seen: dict[str, tuple[EngineOption, list[EngineSpec]]] = {}
        for spec in self.specs():
            for opt in spec.options:
                if opt.name in seen:
                    seen[opt.name][1].append(spec)
                else:
                    seen[opt.name] = (opt, [spec])
        return list(seen.values())

    # ----------------------------------------------------------------- choosing
    def choose(self, config: EngineConfig) -> Choice:
        """The engine ``config`` asks for; "auto" tries the specs in order and says why."""
        if config.name != "auto":
            spec = self.get(config.name)
            found = spec.detect(config)
            reason = f"{spec.name}: asked for ({found.reason})"
            return Choice(spec, config, (reason,))
        reasons = []
        for spec in self.specs():
            if not spec.auto:
                continue
            found = spec.detect(config)
            if found.ok and found.auto:
                reasons.append(f"{spec.name}: chosen ({found.reason})")
                log.info("engine auto: %s", "; ".join(reasons))
                return Choice(spec, config.replace(name=spec.name), tuple(reasons))
            reasons.append(f"{spec.name}: skipped ({found.reason})")
        raise EngineError("No engine can run here: " + "; ".join(reasons) + ".",
                          "Install the app's requirements again (`make setup`).")

    def create(self, config: EngineConfig, motion: MotionOptions | None = None) -> Any:
        """Build the engine ``config`` asks for."""
        return self.build(self.choose(config), motion)

    def build(self, choice: Choice, motion: MotionOptions | None = None) -> Any:
        return choice.spec.factory(self.checked(choice.config), motion or MotionOptions())

    def checked(self, config: EngineConfig) -> EngineConfig:
        """``config`` with the chosen engine's options coerced to their kinds. Options another
        engine declares are dropped (a GUI keeps every engine's settings in one config); a key
        no engine declares is refused."""
        if config.name == "auto":
            return config
        spec = self.get(config.name)
        declared = {opt.name for opt, _specs in self.options()}
        values = {}
        for key, value in config.options.items():
            opt = spec.option(key)
            if opt is not None:
                values[key] = opt.coerce(value)
            elif key not in declared:
                raise ConfigError(f"No engine has an option {key!r}.",
                                  f"The {spec.name} engine takes: {', '.join(o.name for o in spec.options) or 'none'}.")
        return config.replace(options=values)

    # ----------------------------------------------------------------- command line
    def add_arguments(self, parser: argparse.ArgumentParser, *, default: str = "auto",
                      allow_auto: bool = True) -> None:
        """--engine, --device, --half/--no-half and every engine's own options."""
        names = self.names()
        choices = (["auto"] if allow_auto else []) + names
        lines = [f"{s.name}: {s.summary}" for s in self.specs()]
        parser.add_argument("--engine", choices=choices, default=default,
                            help=("auto tries " + ", ".join(names) + " in that order. " if allow_auto else "")
                            + " | ".join(lines))
        parser.add_argument("--device", choices=DEVICE_NAMES, default="auto",
                            help="where the engine runs (auto: cuda, else mps, else cpu)")
        parser.add_argument("--half", action=argparse.BooleanOptionalAction, default=None,
                            help="half precision for the networks (default: on for CUDA, off elsewhere)")
        for opt, specs in self.options():
            if not opt.cli:
                continue
            # A shared name (e.g. checkpoint) says what it means to each engine that takes it.
            helps = [(s.name, s.option(opt.name)) for s in specs]
            text = " | ".join(f"[{name}] {o.help}".rstrip() + (f" ({', '.join(map(str, o.choices))})"
                                                               if o.choices else "") for name, o in helps)
            kwargs: dict[str, Any] = {"dest": f"engine_{opt.name}", "default": None, "help": text}
            if opt.kind == "bool":
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["metavar"] = opt.name.upper()
                if opt.choices:  # every engine's choices for a shared name (each checks its own)
                    kwargs["choices"] = tuple(dict.fromkeys(c for _name, o in helps for c in o.choices))
                if opt.kind in ("float", "int"):
                    kwargs["type"] = float if opt.kind == "float" else int
            parser.add_argument(opt.flag, **kwargs)

    def config_from_args(self, args: argparse.Namespace) -> EngineConfig:
        """The EngineConfig the command line asks for (options of the chosen engine only,
        except with ``--engine auto``, where every given option rides along)."""
        name = getattr(args, "engine", None) or "auto"
        own = None if name == "auto" else {o.name for o in self.get(name).options}
        options = {}
        for opt, _specs in self.options():
            value = getattr(args, f"engine_{opt.name}", None)
            if value is None:
                continue
            if own is not None and opt.name not in own:
                raise ConfigError(f"{opt.flag} is not an option of the {name} engine.",
                                  f"Drop it, or pick an engine that takes it ({', '.join(s.name for s in _specs)}).")
            # The chosen engine's own declaration (a shared name may have other choices per engine).
            decl = self.get(name).option(opt.name) if own is not None else next(
                (o for o in (s.option(opt.name) for s in _specs) if not o.choices or value in o.choices), opt)
            options[opt.name] = decl.coerce(value)
        return EngineConfig(name=name, device=getattr(args, "device", "auto") or "auto",
                            half=getattr(args, "half", None), options=options)


REGISTRY = Registry()


def add_engine_arguments(parser: argparse.ArgumentParser, **kwargs: Any) -> None:
    REGISTRY.add_arguments(parser, **kwargs)


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    return REGISTRY.config_from_args(args)


def engine_config_if_given(args: argparse.Namespace) -> EngineConfig | None:
    """The engine the command line asks for, or None when it names none at all (no --engine
    other than auto, no --device, --half or engine option): the GUI then uses the last one."""
    config = REGISTRY.config_from_args(args)
    given = (getattr(args, "engine", None) not in (None, "auto") or config.device != "auto"
             or config.half is not None or bool(config.options))
    return config if given else None


def create_engine(config: EngineConfig, options: MotionOptions | None = None) -> Any:
    return REGISTRY.create(config, options)


def describe(specs: list[EngineSpec], config: EngineConfig) -> Mapping[str, Availability]:
    """Each spec's availability for ``config`` (for ``doctor`` and the GUI)."""
    return {s.name: s.detect(config.replace(name=s.name)) for s in specs}
