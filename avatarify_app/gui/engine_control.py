"""The engine controller: which engine runs, with which options, from the engine registry.

Every engine and option the window offers comes from ``engines.registry.REGISTRY``; nothing
here names an engine. A switch goes to the session, which builds the engine once on its
inference thread (a checkpoint is loaded there, once); until the session confirms it (its
stats name the engine and its config is the one asked for) the switch is pending. When the
session refuses it, the engine that still runs stays (or, when none runs, the first
available engine in the registry's order takes over) and the error dialog says so.

Options with ``live=True`` go to ``session.set_engine_controls`` without a rebuild; others
rebuild the engine. The engine the user switches to, and its options, are remembered
(``engine/name``, ``engine/<name>/<option>``) once it runs with them, so a failed attempt
never comes back at the next start (what the command line asked for is for that run only);
a secret's value is never logged. Half precision: ``EngineConfig.half`` None is the default (on for CUDA); the
check box sets True/False explicitly, and starts from ``--half/--no-half`` when given.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from avatarify_app.config import EngineConfig
from avatarify_app.engines.registry import REGISTRY, EngineSpec
from avatarify_app.errors import CheckpointError
from avatarify_app.gui.controller import SessionController
from avatarify_app.gui.notices import Notices
from avatarify_app.gui.settings import SCHEMA, AppSettings
from avatarify_app.gui.state import AppState, RunningEngine

log = logging.getLogger(__name__)

CHECKPOINT_OPTION = "checkpoint"
HALF_WORDS = {None: "auto", True: "on", False: "off"}


def half_from_word(word: str) -> bool | None:
    """``engine/half`` in the settings: auto/on/off (and true from before the tri-state was fixed;
    false then meant "the default")."""
    return {"on": True, "true": True, "off": False}.get(word)


def auto_reason(note: str, engine: str) -> str:
    """The short "why" of an automatic choice from ``Stats.engine_note`` (the registry's reasons,
    "name: skipped (why); name: chosen (why)"): the chosen engine's reason."""
    marker = f"{engine}: chosen ("
    for part in note.split("; "):
        if part.startswith(marker) and part.endswith(")"):
            return f"auto: {part[len(marker):-1]}"
    return f"auto chose {engine}"


def option_key(engine: str, option: str) -> str:
    return f"engine/{engine}/{option}"


def find_spec(name: str) -> EngineSpec | None:
    return next((s for s in REGISTRY.specs() if s.name == name), None)


class EngineController(QObject):
    """Engine switches, options, half precision and what runs (see the module docstring)."""

    def __init__(self, state: AppState, settings: AppSettings, notices: Notices, controller: SessionController,
                 engine_config: EngineConfig | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.settings = settings
        self.notices = notices
        self.controller = controller
        self._memory = self._load_memory()  # engine name -> its remembered options
        self._fallbacks_tried: set[str] = set()
        self._switching = False  # a switch was asked for (said in the status bar once it runs)
        if engine_config is None:
            engine_config = self._saved_config()
        elif engine_config.name in self._memory:
            # the command line's options win; the engine's other remembered options stay
            engine_config = engine_config.replace(options={**self._memory[engine_config.name],
                                                           **engine_config.options})
        state.engine = engine_config
        controller.bridge.session_changed.connect(self._on_session)
        controller.bridge.stats.connect(self._on_stats)
        controller.bridge.error.connect(self._on_error)

    # ----------------------------------------------------------------- settings
    def _load_memory(self) -> dict[str, dict[str, Any]]:
        memory: dict[str, dict[str, Any]] = {}
        for spec in REGISTRY.specs():
            values = {}
            for opt in spec.options:
                value = self.settings.get_option(option_key(spec.name, opt.name), opt)
                if value is not None:
                    values[opt.name] = value
            memory[spec.name] = values
        return memory

    def _saved_config(self) -> EngineConfig:
        name = self.settings.get_choice("engine/name", ["auto", *REGISTRY.names()], SCHEMA["engine/name"].default)
        options = dict(self._memory.get(name, {}))
        spec = find_spec(name)
        legacy = self.settings.get_str("engine/checkpoint")
        if legacy and spec is not None and spec.option(CHECKPOINT_OPTION) and CHECKPOINT_OPTION not in options:
            options[CHECKPOINT_OPTION] = legacy  # saved before options were kept per engine
        return EngineConfig(name=name, half=half_from_word(self.settings.get_str("engine/half")),
                            options=options)

    def _remember(self, config: EngineConfig) -> None:
        """The engine the user switched to runs with ``config``: start with it next time."""
        self.settings.set("engine/name", config.name)
        self.settings.set("engine/half", HALF_WORDS[config.half])
        spec = find_spec(config.name)
        if spec is None:  # "auto": its options are those of whichever engine it picks
            return
        self._memory[config.name] = dict(config.options)
        for opt in spec.options:
            value = config.options.get(opt.name)
            key = option_key(spec.name, opt.name)
            if value is None:
                self.settings.remove(key)
            else:
                self.settings.set(key, value)

    # ----------------------------------------------------------------- requests
    def config_for(self, name: str) -> EngineConfig:
        """The config to run engine ``name`` with: its remembered options, the current device and half."""
        current = self.state.engine
        options = dict(current.options) if name == current.name else dict(self._memory.get(name, {}))
        return EngineConfig(name=name, device=current.device, half=current.half, options=options)

    def select(self, name: str) -> None:
        """The user picked engine ``name``."""
        if name != self.state.engine.name:
            self.set_engine(self.config_for(name))

    def set_engine(self, config: EngineConfig) -> None:
        """Switch engines; on failure the error dialog shows and the previous engine stays."""
        self.state.engine = config
        session = self.controller.session
        if session is None:
            self._remember(config)
            return
        self.state.engine_pending = True
        self._switching = True
        self.notices.tell(f"Loading the {self.title(config.name)} engine...")
        session.set_engine(config)

    def set_option(self, key: str, value: Any) -> None:
        """An option of the engine now selected changed in its control."""
        config = self.state.engine
        spec = find_spec(config.name)
        opt = spec.option(key) if spec is not None else None
        if opt is None:
            log.warning("engine %s has no option %s", config.name, key)
            return
        new = config.with_options(**{key: value})
        if new == config:
            return
        session = self.controller.session
        live = (opt.live and session is not None and hasattr(session, "set_engine_controls")
                and not self.state.engine_pending and self.state.runtime.engine == config.name)
        if live:
            self.state.engine = new
            session.set_engine_controls({key: value})
            self._remember(new)
        else:
            self.set_engine(new)

    def load_checkpoint(self, path: str | Path) -> None:
        """Run ``path`` with the selected engine, or else the first engine that takes a checkpoint;
        of those, the first whose ``detect`` accepts it (a FOMM file, a LivePortrait folder)."""
        current = find_spec(self.state.engine.name)
        takers = [s for s in REGISTRY.specs() if s.option(CHECKPOINT_OPTION) is not None]
        if not takers:
            self.notices.warn("No engine takes a checkpoint", "Pick an engine in the Engine panel.")
            return
        ordered = ([current] if current in takers else []) + [s for s in takers if s is not current]
        fits = [s for s in ordered
                if s.detect(self.config_for(s.name).with_options(**{CHECKPOINT_OPTION: str(path)})).ok]
        name = (fits or ordered)[0].name
        self.set_engine(self.config_for(name).with_options(**{CHECKPOINT_OPTION: str(path)}))

    def set_half(self, on: bool) -> None:
        if self.state.engine.half is not None and self.state.engine.half == bool(on):
            return
        self.set_engine(self.state.engine.replace(half=bool(on)))

    def title(self, name: str | None) -> str:
        spec = find_spec(name or "")
        return spec.display_name if spec is not None else str(name)

    # ----------------------------------------------------------------- what the session says
    def _on_session(self, session: Any) -> None:
        """A new session builds ``state.engine`` first: confirmed (and remembered) like a switch."""
        self.state.engine_pending = session is not None

    def _take_runtime(self, stats: Any, asked: EngineConfig) -> None:
        """What runs now, as the session's stats say (for "auto": why it chose that one)."""
        note = detail = ""
        if asked.name == "auto" and stats.engine:  # why auto chose it (the registry's reasons)
            detail = str(getattr(stats, "engine_note", None) or "")
            note = auto_reason(detail, stats.engine)
        self.state.runtime = RunningEngine(engine=stats.engine, device=stats.device, note=note, detail=detail)

    def _on_stats(self, stats: Any) -> None:
        asked = self.state.engine
        self._take_runtime(stats, asked)
        session = self.controller.session
        if not self.state.engine_pending or session is None or session.engine_config != asked:
            return
        if stats.engine == asked.name or (asked.name == "auto" and stats.engine):
            self.state.engine_pending = False
            self._fallbacks_tried.clear()
            if self._switching:  # what the window started with (settings, command line) is not saved
                self._switching = False
                self._remember(asked)
                self.notices.tell(f"Engine: {self.title(stats.engine)} on {stats.device}", 4000)

    def _on_error(self, event: Any) -> None:
        if event.stage != "engine":
            return
        session = self.controller.session
        running = session.stats().engine if session is not None else None
        if not (self.state.engine_pending or running is None):
            self.notices.warn("Engine problem", event.message)
            return
        failed = self.state.engine
        self.state.engine_pending = False
        if self._switching:
            self._switching = False
            self.notices.clear()
        if running is None:
            now = self._fall_back(failed)
        else:
            # Back to what runs: for "auto" the panel shows the engine it chose, so the runtime
            # comes first (no stats may have arrived yet when the switch failed early).
            self._take_runtime(session.stats(), session.engine_config)
            self.state.engine = session.engine_config
            now = f"the {self.title(running)} engine"
        title = "Cannot load this checkpoint" if isinstance(event.error, CheckpointError) \
            else "Cannot switch the engine"
        self.notices.warn(title, f"{event.message}\n\nThe app keeps running with {now}.")

    def _fall_back(self, failed: EngineConfig) -> str:
        """No engine runs: the first other engine in the registry's order whose needs are met."""
        self._fallbacks_tried.add(failed.name)
        for spec in REGISTRY.specs():
            if spec.name in self._fallbacks_tried or not spec.auto:
                continue
            config = EngineConfig(name=spec.name, device=failed.device, half=failed.half,
                                  options=self._memory.get(spec.name, {}))
            try:
                found = spec.detect(config)
            except Exception as err:  # a detector that fails counts as "not available"
                log.warning("engine %s: detection failed: %s", spec.name, err)
                continue
            if found.ok:
                self.set_engine(config)
                return f"the {spec.display_name} engine"
        return "no engine (pick one in the Engine panel)"
