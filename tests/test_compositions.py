"""jaxbp.compositions: a sweep job derived from the first job equals Hydra's own composition
of it, node for node and flag for flag, and anything but plain values is composed in full."""

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from jaxbp import app, compositions, paths

# (overrides given to the multirun, each job's overrides as the basic sweeper lists them)
DERIVED = {
    "the design card's lr sweep": ([], [["lr=0.01"], ["lr=0.1"], ["lr=1.0"]]),
    "lr by hidden": ([], [["lr=0.1", "hidden=2"], ["lr=0.1", "hidden=8"], ["lr=1", "hidden=3"]]),
    "a value inside a chosen group": ([], [["optim=momentum", "optim.momentum=0.5"],
                                           ["optim=momentum", "optim.momentum=0.99"]]),
    "strings, booleans, null and data keys": ([], [
        ["criterion=loss", "shuffle=true", "max_members_per_chunk=null", "data.seed=0"],
        ["criterion=margin", "shuffle=false", "max_members_per_chunk=64", "data.seed=5"]]),
    "a fixed + override beside a swept value": ([], [["+experiment=xor_lr_hidden", "lr=0.5"],
                                                     ["+experiment=xor_lr_hidden", "lr=2.0"]]),
    "hydra overrides on the master and an excluded key": (
        ["hydra.job.chdir=true", "hydra.job.config.override_dirname.exclude_keys=[seed]",
         "hydra.job.config.override_dirname.kv_sep=_"],
        [["seed=0", "lr=0.1"], ["seed=1000", "lr=0.1"], ["seed=2000", "lr=0.3"]]),
}
COMPOSED_IN_FULL = {
    "another group choice": [["optim=sgd"], ["optim=momentum"]],
    "another data option": [["data=xor"], ["data=parity"]],
    "a + override that differs": [["+tag=a"], ["+tag=b"]],
    "a list value": [["data.targets=[0.1,0.9]"], ["data.targets=[0.2,0.8]"]],
    "different keys": [["lr=0.1"], ["hidden=4"]],
    "a key given twice (the last wins)": [["lr=0.1", "lr=0.2"], ["lr=0.3", "lr=0.2"]],
    "a value that does not resolve": [["lr=${oc.env:JAXBP_NO_SUCH_VARIABLE}"], ["lr=0.2"]],
}


@pytest.fixture
def loader():
    app.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()
    GlobalHydra.instance().clear()


def _hydras_own(loader, master, job):
    return type(loader).load_sweep_config(loader, master, list(job))


def _same_config(a, b) -> None:
    assert OmegaConf.to_yaml(a) == OmegaConf.to_yaml(b)
    app_keys = [key for key in a if key != "hydra"]
    assert OmegaConf.to_container(OmegaConf.masked_copy(a, app_keys), resolve=True) == \
        OmegaConf.to_container(OmegaConf.masked_copy(b, app_keys), resolve=True)
    assert OmegaConf.is_struct(a) == OmegaConf.is_struct(b) is True
    assert OmegaConf.is_readonly(a.hydra) == OmegaConf.is_readonly(b.hydra)
    assert app.to_run_config(a) == app.to_run_config(b)


def _share_counting(loader) -> list:
    """Shares the loader's compositions (compositions.share) and returns the list that the
    overrides of every job Hydra then composes in full are appended to."""
    composed_in_full = []
    compose = loader.load_sweep_config

    def counting(master_config, overrides):
        composed_in_full.append(overrides)
        return compose(master_config, overrides)

    loader.load_sweep_config = counting
    compositions.share(loader)
    return composed_in_full


@pytest.mark.parametrize("name", list(DERIVED))
def test_a_derived_job_is_the_job_hydra_composes(loader, name):
    master_overrides, jobs = DERIVED[name]
    master = loader.load_configuration("config", master_overrides, RunMode.MULTIRUN)
    composed_in_full = _share_counting(loader)
    ours = [loader.load_sweep_config(master, job) for job in jobs]
    assert composed_in_full == [jobs[0]], "the first job composed, the others derived"
    for job, config in zip(jobs, ours):
        _same_config(config, _hydras_own(loader, master, job))
    assert loader.load_sweep_config(master, jobs[-1]) is ours[-1], "each job once"


def test_launchers_marking_a_job_do_not_reach_the_next(loader):
    """Launchers set hydra.job.id and num on the config they get; the jobs derived after
    that must not inherit them."""
    master = loader.load_configuration("config", [], RunMode.MULTIRUN)
    compositions.share(loader)
    first = loader.load_sweep_config(master, ["lr=0.1"])
    with open_dict(first):
        first.hydra.job.id, first.hydra.job.num = "marked", 7
        first.lr = 123.0
    _same_config(loader.load_sweep_config(master, ["lr=1.0"]), _hydras_own(loader, master, ["lr=1.0"]))


@pytest.mark.parametrize("name", list(COMPOSED_IN_FULL))
def test_anything_but_plain_values_is_composed_in_full(loader, name):
    jobs = COMPOSED_IN_FULL[name]
    master = loader.load_configuration("config", [], RunMode.MULTIRUN)
    template = _hydras_own(loader, master, jobs[0])
    assert compositions.derive(template, tuple(jobs[0]), tuple(jobs[1]), master) is None


def test_a_value_the_node_refuses_is_left_to_hydra(loader):
    master = loader.load_configuration("config", [], RunMode.MULTIRUN)
    template = _hydras_own(loader, master, ["hidden=3"])
    assert compositions.derive(template, ("hidden=3",), ("hidden=three",), master) is None


@pytest.mark.parametrize("job", [["lr=0.1"], ["optim=momentum", "optim.momentum=0.5"],
                                 ["data=parity", "data.targets=[0.1,0.9]"], ["data=file", "data.path=/x.csv"],
                                 ["data=file"], ["hidden=0"]])
def test_the_run_config_is_omegaconfs_object_of_the_config_less_hydra(loader, job):
    """app.to_run_config builds the RunConfig field by field rather than copying Hydra's
    node away first; it must be what OmegaConf.to_object of that copy is, or fail alike."""
    from jaxbp.checks import ConfigError

    master = loader.load_configuration("config", [], RunMode.MULTIRUN)
    composed = _hydras_own(loader, master, job)
    without_hydra = composed.copy()
    with open_dict(without_hydra):
        del without_hydra["hydra"]
    try:
        expected = app._absolute_data_path(OmegaConf.to_object(without_hydra))
    except Exception as err:  # noqa: BLE001
        with pytest.raises(ConfigError) as refused:
            app.to_run_config(composed)
        assert refused.value.key in (getattr(err, "full_key", None), getattr(err, "key", None))
        return
    assert app.to_run_config(composed) == expected


# (the command line after -m, its jobs' overrides as the basic sweeper lists them)
FROM_THE_SWEEP = {
    "the design card's lr sweep": (["lr=0.01,0.1,1.0"], [["lr=0.01"], ["lr=0.1"], ["lr=1.0"]]),
    "lr by hidden": (["lr=0.1,1", "hidden=2,3,8"], [["lr=0.1", "hidden=2"], ["lr=1", "hidden=8"]]),
    "a value inside a fixed group choice": (["optim=momentum", "optim.momentum=0.5,0.9"],
                                            [["optim=momentum", "optim.momentum=0.5"],
                                             ["optim=momentum", "optim.momentum=0.9"]]),
    "strings, booleans, null and a range": (
        ["criterion=loss,margin", "shuffle=true,false", "max_members_per_chunk=null,64", "seed=range(0,3000,1000)"],
        [["criterion=margin", "shuffle=false", "max_members_per_chunk=null", "seed=2000"],
         ["criterion=loss", "shuffle=true", "max_members_per_chunk=64", "seed=0"]]),
    "hydra overrides and a fixed value": (
        ["hydra.job.config.override_dirname.exclude_keys=[seed]", "seed=0,1000", "hidden=4"],
        [["seed=0", "hidden=4"], ["seed=1000", "hidden=4"]]),
}


@pytest.mark.parametrize("name", list(FROM_THE_SWEEP))
def test_jobs_derived_from_the_sweeps_own_config_are_the_jobs_hydra_composes(loader, name):
    """The sweep's config (-m's) holds every fixed override and each swept key at its
    default: every job is derived from it, and none is composed."""
    command_line, jobs = FROM_THE_SWEEP[name]
    master = loader.load_configuration("config", [*command_line, "hydra.mode=MULTIRUN"], RunMode.MULTIRUN)
    composed_in_full = _share_counting(loader)
    for job in jobs:
        _same_config(loader.load_sweep_config(master, job), _hydras_own(loader, master, job))
    assert composed_in_full == []


def test_a_swept_group_is_composed_by_hydra(loader):
    master = loader.load_configuration("config", ["optim=sgd,momentum", "hydra.mode=MULTIRUN"], RunMode.MULTIRUN)
    assert compositions._from_master(master, ("optim=momentum",)) is None


def test_a_mandatory_group_left_unchosen_is_left_to_hydra(tmp_path):
    """A multirun composition skips a mandatory group (``db: ???``) nobody chose; the job's
    composition refuses it. Deriving from the sweep's config would hide that refusal."""
    (tmp_path / "db").mkdir()
    (tmp_path / "config.yaml").write_text("defaults:\n  - db: ???\n  - _self_\nx: 1\n")
    (tmp_path / "db" / "mysql.yaml").write_text("a: 1\n")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["x=1,2"], RunMode.MULTIRUN)
        assert compositions._from_master(master, ("x=1",)) is None
    GlobalHydra.instance().clear()
