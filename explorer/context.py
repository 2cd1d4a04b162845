"""What the tabs share: the user's Selection (per browser session) and app-wide options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .accounts import LOCAL_USER, user_of


@dataclass
class AppOptions:
    """Set once at start-up (command line); read-only afterwards, so safe to share."""

    default_device: str = "cpu"
    # Training runs (one folder each) and datasets (CIFAR archives, image folders). The page
    # offers image folders from inside `data_dir` only, never a free path on the server.
    runs_dir: Path = Path("runs")
    data_dir: Path = Path("data")
    # explorer.accounts.Accounts (--auth-file): everyone signs in. None: one local user.
    accounts: Any = None
    admins: tuple[str, ...] = ()  # --admin: users who may stop and delete every run
    # explorer.train.jobs.QueueLimits (--max-runs-per-user, --max-queue-per-device); None:
    # its defaults.
    queue_limits: Any = None
    # --study-storage: the studies' Optuna storage URL (a lab's PostgreSQL); None:
    # resnext.study's default, the SQLite file in `runs_dir`.
    study_storage: str | None = None

    @property
    def admin_names(self) -> frozenset[str]:
        """Who may manage every run: the --admin users; without accounts, the one local
        user (the app is theirs, as before accounts existed)."""
        return frozenset(self.admins) if self.accounts is not None else frozenset({LOCAL_USER})


@dataclass
class TabContext:
    """Handed to every tab's `build`: shared components created by the app frame.

    `selection` is a gr.State holding the current `Selection`; tabs read it as an input and
    may listen to its `.change` event to redraw when the Architecture controls move.
    """

    options: AppOptions
    demo: Any  # the gr.Blocks being built (for .load events)
    selection: Any  # gr.State[Selection]
    # gr.State[WeightsChoice] (explorer.shared.models): the weights choice shared by the
    # Run and Attributions tabs. The Attributions tab's weights panel sets it.
    weights: Any
    # gr.State[str]: the device forward passes run on (Run tab), which attributions use too.
    # Each tab's device dropdown writes it on user input and follows it otherwise.
    device: Any = None
    # gr.State[Selection | None]: a network chosen outside the Architecture tab (a trained
    # run, a smaller variant). The Architecture tab puts it on its controls, which then set
    # `selection` as a slider would: controls and numbers never disagree.
    selection_request: Any = None
    # explorer.train.jobs.TrainingManager: the app's one (shared, locked).
    training: Any = None

    def user(self, request: Any) -> str:
        """Who sent a request (a gr.Request): `accounts.user_of`."""
        return user_of(request, self.options.accounts)

    def follow_shared_device(self, dropdown: Any) -> None:
        """Keep a tab's device dropdown and the session's shared device in step.

        A user's choice (.input, never a programmatic update) sets the shared device; any
        change of the shared device moves this dropdown, so attributions run where forward
        passes do.
        """
        dropdown.input(lambda key: key, dropdown, self.device, api_visibility="private",
                       queue=False, show_progress="hidden")
        self.device.change(lambda key: key, self.device, dropdown, api_visibility="private",
                           queue=False, show_progress="hidden")
