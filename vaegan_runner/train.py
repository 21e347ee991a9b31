"""``vaegan-train``: compose the config, validate it, load data, build the family, train.

    vaegan-train model=vaegan dataset=mnist
    vaegan-train -m model=vae,gan optimizer.lr=1e-3,1e-4
    python -m vaegan_runner.train model=gan trainer.max_steps=500

A config that cannot run stops here, before any data is loaded or model built, with one
paragraph naming the key, exit code 2, and no run directory left behind.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .config.checks import ConfigError
from .config.override_keys import refuse_unknown_keys
from .config.override_syntax import refuse_unreadable
from .config.resume_overrides import with_run_settings
from .config.run_dir import remove_if_empty_run, run_dir_of
from .config.run_lock import hold, release
from .config.search_path import register as register_search_path_plugin
from .config.sweep_dir import register as register_sweep_resolver
from .sweep_failures import FailedJob, record_failure

log = logging.getLogger("vaegan_runner")


def config_dir() -> str:
    """The source tree's ``configs/`` when running from a checkout, else the installed copy."""
    source = Path(__file__).resolve().parent.parent / "configs"
    return str(source) if (source / "train.yaml").is_file() else "pkg://vaegan_runner.configs"


def run(cfg: DictConfig, output_dir: Path, multirun: bool = False, stop=None) -> dict[str, float]:
    """Validate ``cfg``, take the run directory (a resumed run's own), load the data, build the
    family and train it; what ``fit`` returns. The run folders it locked are given back at its end."""
    # Imports here keep `vaegan-train --help` and config errors fast.
    from .data import load_data
    from .models import family_class
    from .run_schema import validate
    from .training.device import resolve_device, seed_everything
    from .training.distributed import from_environment
    from .training.loop import fit

    run_cfg = validate(cfg)
    dist = from_environment(run_cfg.device)
    taken: list[Path] = []  # the run folders this call locked (config/run_lock.py), given back at its end
    try:
        device = resolve_device(run_cfg.device, dist.local_rank if dist.enabled else None)
        run_dir, resume_state = take_run_dir(run_cfg, output_dir, multirun, taken)
        check_writable(run_dir)

        seed_everything(run_cfg.seed, run_cfg.trainer.deterministic)
        family_cls = family_class(run_cfg.model.name)
        refuse_labelled_subset(run_cfg, family_cls)
        data = load_data(run_cfg.dataset, device)
        refuse_conditional_without_labels(run_cfg, family_cls, data)
        settle_optimized_metric(cfg, run_cfg, family_cls, data, device)
        family = build_family(run_cfg, data, device, dist)
        log_what_trains(run_cfg, data, device, dist, run_dir)
        if resume_state is not None:
            say_if_finished(run_cfg, data, run_dir, resume_state.step)
        return fit(run_cfg, family, data, run_dir, resume_state, dist, stop)
    finally:
        dist.close()
        for folder in taken:
            release(folder)


def take_run_dir(run_cfg, output_dir: Path, multirun: bool, taken: list[Path]):
    """(run directory, checkpoint state to resume or None): ``resume``'s checkpoint and its run
    directory when one is found (``resume_from``), else ``output_dir``, locked for this run and
    refused when it holds another run's checkpoints."""
    from .training.resume import refuse_foreign_checkpoints

    if run_cfg.resume and (resumed := resume_from(run_cfg, output_dir, multirun, taken)) is not None:
        return resumed
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    hold_run_dir(output_dir, key, "run", taken)  # a multirun job's folder (a single run's is held already)
    refuse_foreign_checkpoints(output_dir, run_cfg.resolved, key)
    return output_dir, None


def resume_from(run_cfg, output_dir: Path, multirun: bool, taken: list[Path]):
    """(run directory, checkpoint state) of the checkpoint ``resume`` names, checked, its run
    directory locked and this session's log added to it; None when ``resume=auto`` finds none."""
    from .training.resume import changed_settings, resolve_resume
    from .training.resume_check import check_resumable, warn_if_other_version

    found = resolve_resume(run_cfg.resume, output_dir, run_cfg.resolved, multirun)
    if found is None:
        return None
    checkpoint, resume_state = found
    check_resumable(resume_state, run_cfg)
    warn_if_other_version(resume_state)
    run_dir = run_dir_of(checkpoint)
    hold_run_dir(run_dir, "resume", "resume", taken)  # a run still writing there: refused
    if changed := changed_settings(resume_state.config, run_cfg.resolved):
        log.warning("resuming with settings the checkpoint was not trained with: %s", "; ".join(changed))
    log.info("resuming %s at step %d; writing to %s", checkpoint, resume_state.step, run_dir)
    if run_dir != output_dir:
        log_to(run_dir)
    return run_dir, resume_state


def refuse_labelled_subset(run_cfg, family_cls) -> None:
    """``dataset.labelled`` (a few labels) is for a family that learns a classifier from them;
    refused before any data is loaded."""
    if getattr(run_cfg.dataset, "labelled", None) is not None and not family_cls.has_classifier:
        raise ConfigError(
            "dataset.labelled",
            f"only a family that learns a classifier from a few labels (model=ssaae) trains on a labelled "
            f"subset, not model={run_cfg.model.name}; leave dataset.labelled=null",
        )


def refuse_conditional_without_labels(run_cfg, family_cls, data) -> None:
    """A conditional family needs class labels, which ``data`` may not have."""
    if run_cfg.model.conditional and data.num_classes is None:
        instead = (
            f"model={run_cfg.model.name} always needs them"
            if family_cls.conditional_only
            else "or leave model.conditional=false"
        )
        raise ConfigError(
            "model.conditional",
            f"true needs class labels, and {data.name} has none (an image folder is labelled by one "
            f"sub-folder per class); sort the images into class folders, {instead}",
        )


def settle_optimized_metric(cfg: DictConfig, run_cfg, family_cls, data, device) -> None:
    """Set ``eval.optimized_metric`` in both configs to what this run can compute (``auto``
    resolved and logged; ``NOTHING`` when none, which also turns ``checkpoint.keep_best`` off)."""
    from .run_schema import AUTO, choose_optimized_metric

    chosen, why = choose_optimized_metric(
        run_cfg,
        family_cls,
        has_labels=data.num_classes is not None,
        held_out=len(data.test),
        held_out_key="dataset.n_test" if hasattr(run_cfg.dataset, "n_test") else "dataset.val_fraction",
        on_cpu=device.type == "cpu",
    )
    if run_cfg.eval.optimized_metric == AUTO:
        log.info(
            "eval.optimized_metric=auto: %s",
            f"{chosen} ({why})" if chosen else f"{why}; the run returns NaN to a sweeper and keeps no best.pt",
        )
    run_cfg.eval.optimized_metric = cfg.eval.optimized_metric = chosen or NOTHING
    if chosen is None:
        run_cfg.checkpoint.keep_best = False


def log_what_trains(run_cfg, data, device, dist, run_dir: Path) -> None:
    """One line: the family, the data, the device (and rank) and the run directory."""
    log.info(
        "%s on %s (%d train / %d held-out images, %dx%dx%d) on %s%s; run directory %s",
        run_cfg.model.name,
        data.name,
        len(data.train),
        len(data.test),
        data.channels,
        data.image_size,
        data.image_size,
        device,
        f" (rank {dist.rank} of {dist.world_size})" if dist.enabled else "",
        run_dir,
    )


def build_family(run_cfg, data, device, dist):
    """The family on its device, identical on every rank, with the speed options applied."""
    import torch

    from .models import family_class

    family = family_class(run_cfg.model.name)(run_cfg.model, data.channels, data.image_size, data.num_classes)
    family = family.to(device)
    if run_cfg.trainer.channels_last:
        family = family.to(memory_format=torch.channels_last)
    if dist.enabled:
        if run_cfg.trainer.sync_batchnorm and device.type == "cuda":
            for name, net in family.networks().items():
                setattr(family, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(net))
        dist.broadcast_module(family)
    if run_cfg.trainer.compile:
        for net in family.networks().values():
            net.compile()
    return family


def hold_run_dir(folder: Path, key: str, purpose: str, taken: list[Path]) -> None:
    """Lock ``folder`` for this run (``config/run_lock.py``) before anything is written there,
    adding it to ``taken`` when this call took it; a ConfigError naming the live run that holds
    it. Only rank 0 under torchrun takes it. A folder that cannot be made is left to
    ``check_writable``, which says why."""
    from .config.run_dir import is_main_process

    if not is_main_process():
        return
    try:
        if hold(folder, key, purpose):
            taken.append(folder)
    except OSError:
        pass


def say_if_finished(run_cfg, data, run_dir: Path, step: int) -> None:
    """Resuming a run that has already trained the length this command asks for (``resume=auto``
    of a finished run) trains nothing and returns its results: say so, and how to train it further."""
    import math

    from .training.loop import epoch_length, total_steps
    from .training.run_record import evaluation_complete

    per_epoch = epoch_length(data, run_cfg.trainer.batch_size)
    total = total_steps(run_cfg, per_epoch)
    if step < total or not evaluation_complete(run_dir / "metrics.json"):  # a stopped evaluation runs again
        return
    max_epochs, max_steps = run_cfg.trainer.max_epochs, run_cfg.trainer.max_steps
    done = step / per_epoch
    if max_epochs is not None and total == max_epochs * per_epoch:
        asked, more = (
            f"trainer.max_epochs={max_epochs}",
            f"trainer.max_epochs={math.floor(done) + max(1, int(done) // 2)}",
        )
    else:
        asked, more = f"trainer.max_steps={max_steps}", f"trainer.max_steps={2 * step}"
    log.info(
        "the run in %s is finished: it trained %d steps (%s) and this command asks for %s, so there is "
        "nothing to train; its results (metrics.json) stand. To train it further, ask for more, e.g. %s resume=%s",
        run_dir,
        step,
        f"{done:.3g} epoch" + ("" if done == 1 else "s"),
        asked,
        more,
        "auto" if run_cfg.resume == "auto" else run_dir,
    )


def check_writable(run_dir: Path) -> None:
    """Fail now, not at the first checkpoint, when the run directory (a resumed run's
    original one) cannot be written."""
    from .config.run_dir import is_main_process, unwritable_dir_error

    if not is_main_process():
        return  # rank 0 probes; a second probe in the same folder is what raced
    error = unwritable_dir_error(run_dir, "resume")
    if error is not None:
        raise error


def log_to(run_dir: Path) -> None:
    """Append this session's log to the resumed run's own ``train.log``."""
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)


register_sweep_resolver()
register_search_path_plugin()  # other packages' config folders (config/search_path.py)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float:
    """Train; returns the final value of ``eval.optimized_metric`` (what a sweeper minimises)."""
    from hydra.types import RunMode

    from .training.stopping import (
        EXIT_CONFIG_ERROR,
        EXIT_DIVERGED,
        Diverged,
        Interrupted,
        StopRequest,
    )

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    share_cores(hydra_cfg.launcher.get("n_jobs"))
    try:
        check_family_optimizer_choice(hydra_cfg.runtime.choices, cfg)
        with StopRequest() as stop:
            results = run(cfg, output_dir, multirun=multirun, stop=stop)
    except ConfigError as err:
        return fail(hydra_cfg, f"vaegan-train: error: {err}", EXIT_CONFIG_ERROR)
    except Interrupted as err:
        return fail(hydra_cfg, f"vaegan-train: {err}", err.exit_code, whole_command=True)  # stops a sweep too
    except Diverged as err:
        return fail(hydra_cfg, f"vaegan-train: diverged: {err}", EXIT_DIVERGED)
    remove_if_empty_run(output_dir)  # a resumed run wrote into its original directory
    name = cfg.eval.optimized_metric  # what auto stood for here, set by run()
    if name in results:
        return results[name]
    if not results or name == NOTHING:  # a rank other than 0 under torchrun; auto found nothing
        return float("nan")
    return fail(
        hydra_cfg,
        f"vaegan-train: error: eval.optimized_metric={name} was not computed: see metrics.json's metrics_skipped",
        EXIT_CONFIG_ERROR,
    )


FAMILY_OPTIMIZER = "family_optimizer@optimizer"
NOTHING = "none"  # eval.optimized_metric=auto with nothing computable: the run returns NaN


def check_family_optimizer_choice(choices, cfg: DictConfig) -> None:
    """``family_optimizer`` follows ``model=`` and ``optimizer=`` (``configs/train.yaml``); a
    command line that picks it itself would silently train with another family's settings."""
    chosen, expected = choices.get(FAMILY_OPTIMIZER), f"{cfg.model.name}_{cfg.optimizer.name}"
    if chosen is not None and chosen != expected:
        raise ConfigError(
            "family_optimizer",
            f"is chosen by model= and optimizer= ({expected} here, used when "
            f"configs/family_optimizer/{expected}.yaml exists), got {chosen}; drop it and set "
            "optimizer.lr=, optimizer.betas= or optimizer.<network>.lr= instead",
        )


def fail(hydra_cfg, message: str, code: int, whole_command: bool = False) -> float:
    """End the command with ``message`` and exit ``code``. In a multirun, end only this job:
    record it for the sweep's report (``sweep_failures.py``) and return NaN (a
    ``FailedJob``, which Optuna's sweeper counts as a failed trial), so the sweep goes on."""
    from hydra.types import RunMode

    remove_if_empty_run(Path(hydra_cfg.runtime.output_dir))
    if hydra_cfg.mode == RunMode.MULTIRUN and not whole_command:
        log.error(message)
        record_failure(hydra_cfg.sweep.dir, hydra_cfg.job.num, list(hydra_cfg.overrides.task), message, code)
        return FailedJob(hydra_cfg.job.num, message, code)
    to_log_files(message)  # a run that stays (a stopped or diverged one): its train.log says why it ended
    logging.shutdown()
    print(message, file=sys.stderr)
    sys.exit(code)


def to_log_files(message: str) -> None:
    """``message`` into the log files that still have a folder (the run's ``train.log``; a run
    directory removed as empty has none) and not the console, which gets it once, from ``fail``."""
    record = logging.LogRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent.is_dir():
            handler.handle(record)


def share_cores(parallel_jobs: int | None) -> None:
    """Under a launcher that runs jobs side by side (``hydra/launcher=joblib``), give each job
    its share of the cores instead of letting every one start a thread per core."""
    if not parallel_jobs or parallel_jobs == 1:
        return
    import os

    import torch

    cores = os.cpu_count() or 1
    jobs = cores if parallel_jobs < 0 else min(parallel_jobs, cores)
    torch.set_num_threads(max(1, cores // jobs))


def cli() -> None:
    """``vaegan-train`` and ``python -m vaegan_runner.train``: overrides that Hydra cannot read are
    explained (``config/override_syntax.py``), and so are keys and configs the tree does not have
    (``config/override_keys.py``); ``resume=<run>`` brings that run's own overrides
    (``config/resume_overrides.py``), then Hydra composes the config; ``--version`` prints the
    runner's version."""
    if "--version" in sys.argv[1:]:
        from .version import print_version

        print_version("vaegan-train")
        return
    refuse_unreadable(sys.argv[1:])  # an override Hydra's grammar cannot read: how to quote it, exit 2
    sys.argv[1:] = with_run_settings(sys.argv[1:])
    refuse_unknown_keys(sys.argv[1:], config_dir(), "train")  # a key or config the tree lacks: exit 2
    main()


if __name__ == "__main__":
    cli()
