"""The method registry: entries, the networks each samples, the sets the workflow builds, the refusals."""

from pathlib import Path

import pytest

from dcm import layout, methods
from dcm.config import load_config
from dcm.errors import DCMError
from tests.helpers import REPO, SMOKE

DEFAULT = REPO / "config" / "config.yaml"


@pytest.fixture(scope="module")
def cfg():
    return load_config(DEFAULT, ["results_dir=/r"])


def test_static_methods_and_trainers(cfg):
    assert list(methods.METHODS) == ["teacher", "lcm", "pcm"]
    assert set(methods.TRAINERS) == {"vcm", "lcm", "pcm"}
    assert methods.method(cfg, "pcm").cut == "pcm" and methods.method(cfg, "teacher").trainer is None
    assert methods.TRAINERS["lcm"].reads == ("seed", "backbone", "schedule", "distill", "lcm")
    assert [name for name, t in methods.TRAINERS.items() if t.per_phase_count] == ["pcm"]


def test_variants_and_mixes_are_methods_of_the_config(cfg):
    dcm, vcm = methods.method(cfg, "dcm"), methods.method(cfg, "vcm")
    assert (dcm.cut, dcm.table, dcm.trainer) == ("experts", "1", None)
    assert vcm.trainer is methods.VCM and methods.method(cfg, "od_pe").table == "3"
    mix = methods.method(cfg, "vcm+dete@dcm")
    assert (mix.semantic, mix.detail, mix.variant, mix.table) == ("vcm", "dete", "dcm", "fig3")
    assert methods.method(cfg, "seme+vcm").variant == "od"
    for bad in ("dete+seme", "seme+vcm@", "vcm+lcm", "seme+"):
        with pytest.raises(DCMError, match="expected <seme|vcm>"):
            methods.method(cfg, bad)
    with pytest.raises(DCMError, match="decouple: false"):
        methods.method(cfg, "seme+vcm@vcm")
    with pytest.raises(DCMError, match="unknown method 'sd3'; known: teacher, lcm, pcm, vcm"):
        methods.method(cfg, "sd3")


def test_networks_each_method_samples(cfg):
    run, point = Path("/r/tiny"), Path("/r/tiny/kappa/20")
    networks = lambda name, p=run, steps=4: methods.networks(cfg, methods.method(cfg, name), run, p, steps)
    assert networks("teacher") == [] and networks("lcm") == [run / "lcm"] and networks("vcm") == [run / "vcm"]
    assert networks("lcm", steps=8) == [run / "lcm"]  # one LCM network for every step count
    assert networks("dcm", point) == [point / "seme" / "tc", point / "dete" / "dcm"]
    assert networks("od_pe") == [run / "seme" / "plain", run / "dete" / "od_pe"]
    assert networks("seme+vcm") == [run / "vcm", run / "seme" / "plain", run / "dete" / "od"]


def test_each_pcm_step_count_samples_the_network_of_its_own_phase_count(cfg):
    run, pcm = Path("/r/tiny"), methods.method(cfg, "pcm")
    assert [methods.networks(cfg, pcm, run, run, k) for k in (2, 4, 8)] == [[run / "pcm" / str(k)] for k in (2, 4, 8)]
    fixed = load_config(DEFAULT, ["results_dir=/r", "pcm.phases=2"])  # the structure control: one network
    assert [methods.networks(fixed, pcm, run, run, k) for k in (2, 4, 8)] == [[run / "pcm" / "2"]] * 3


def test_phase_count_of_each_method(cfg):
    counts = {name: methods.phase_count(cfg, *layout.parse_sample_set(name)) for name in methods.table1_sets(cfg)}
    assert counts == {"teacher-50": 1, "teacher-2": 1, "lcm-2": 1, "pcm-2": 2, "dcm-2": 2,
                      "teacher-4": 1, "lcm-4": 1, "pcm-4": 4, "dcm-4": 2,
                      "teacher-8": 1, "lcm-8": 1, "pcm-8": 8, "dcm-8": 2}
    assert {methods.phase_count(cfg, v, 4) for v in cfg["variants"]} == {2}
    assert methods.phase_count(cfg, "seme+vcm", 4) == 2
    fixed = load_config(DEFAULT, ["results_dir=/r", "pcm.phases=2"])
    assert [methods.phase_count(fixed, "pcm", k) for k in (2, 4, 8)] == [2, 2, 2]


def test_the_sub_phase_overlay_cuts_each_experts_phase_in_two():
    cfg = load_config([DEFAULT, REPO / "config" / "subphases.yaml"], ["results_dir=/r"])
    assert cfg["name"] == "tiny-subphases" and cfg["schedule"]["num_steps"] == 50  # merged onto the default
    counts = {name: methods.phase_count(cfg, *layout.parse_sample_set(name)) for name in methods.table1_sets(cfg)}
    assert counts == {"teacher-50": 1, "teacher-4": 1, "lcm-4": 1, "pcm-4": 4, "dcm-4": 4,
                      "teacher-8": 1, "lcm-8": 1, "pcm-8": 8, "dcm-8": 4}
    assert {methods.phase_count(cfg, v, 4) for v in cfg["variants"]} == {4}
    with pytest.raises(DCMError, match=r"not a multiple of the 4 phases of edges \[50, 40, 30, 15, 0\]"):
        load_config([DEFAULT, REPO / "config" / "subphases.yaml"], ["results_dir=/r", "sampling.steps=[2,4]"])


def test_the_phase_count_pcm_trains(cfg):
    assert methods.trained_phases(cfg, 8) == 8
    assert methods.trained_phases(load_config(DEFAULT, ["results_dir=/r", "pcm.phases=2"]), None) == 2
    with pytest.raises(DCMError, match="pcm.phases is 'steps' .*: give --phases P"):
        methods.trained_phases(cfg, None)
    methods.check_arguments(cfg, {"phases": "50"})
    for bad in (0, 51):
        with pytest.raises(DCMError, match=f"--phases {bad}: a phase count must lie in 1..50"):
            methods.check_arguments(cfg, {"phases": bad})


def test_sample_sets_the_workflow_builds(cfg):
    assert methods.table1_sets(cfg) == ["teacher-50", "teacher-2", "lcm-2", "pcm-2", "dcm-2",
                                        "teacher-4", "lcm-4", "pcm-4", "dcm-4",
                                        "teacher-8", "lcm-8", "pcm-8", "dcm-8"]
    assert methods.table3_sets(cfg) == [f"{v}-4" for v in ("vcm", "od", "od_pe", "od_pe_tc", "od_pe_gf", "dcm")]
    assert methods.figure3_sets(cfg) == ["vcm-4", "seme+vcm-4", "vcm+dete-4", "od-4"]
    assert methods.userstudy_sets(cfg) == ["dcm-4", "lcm-4", "pcm-4"]
    assert methods.sweep_set(cfg) == "dcm-4"
    assert len(methods.sample_sets(cfg)) == 1 + 3 * 9 and set(methods.figure3_sets(cfg)) <= set(methods.compare_sets(cfg))


def test_experiments_follow_the_tables(cfg):
    assert [methods.experiment(cfg, m) for m in ("teacher", "lcm", "dcm", "od", "seme+vcm")] == \
        ["table1", "table1", "table1", "table3-ablations", "table3-ablations"]


def test_check_request_refuses_steps_and_kappa_points(cfg):
    assert methods.check_request(cfg, "dcm", 4).name == "dcm"
    with pytest.raises(DCMError, match=r"--steps 3: dcm-3 cannot be sampled: it is not a multiple of the 2 phases"):
        methods.check_request(cfg, "dcm", 3)
    with pytest.raises(DCMError, match=r"--steps 0: lcm-0 cannot be sampled: a step count must be at least 1"):
        methods.check_request(cfg, "lcm", 0)
    point = {**cfg, "kappa_sweep": {**cfg["kappa_sweep"], "point": 20}}
    with pytest.raises(DCMError, match="--kappa 20 applies to methods made of SemE and DetE only"):
        methods.check_request(point, "vcm+dete", 4)


def test_layout_paths():
    assert layout.parse_sample_set("vcm+dete@od-4") == ("vcm+dete@od", 4)
    assert layout.point_dir("/r/x", None) == Path("/r/x") and layout.point_dir("/r/x", 5) == Path("/r/x/kappa/5")
    assert layout.log_file("/r/x", "seme-tc", "{kappa}") == Path("/r/x/logs/kappa{kappa}/seme-tc.log")
    smoke = load_config(SMOKE, ["results_dir=/r"])
    assert layout.sweep_point(smoke, 6) == Path("/r/smoke") and layout.sweep_point(smoke, 4) == Path("/r/smoke/kappa/4")
    with pytest.raises(DCMError, match="not <method>-<steps>"):
        layout.parse_sample_set("dcm")


def test_the_seme_plus_dete_mix_is_dcm_with_semes_weights_loaded_once(tmp_path):
    import torch

    from benchmarks.run import random_run
    from dcm.backbones import load_backbone, teacher_network_dir
    from dcm.method_samplers import SamplerRequest, build_sampler
    from dcm.sampling import seeded_noise
    from dcm.schedule import PhaseSchedule

    cfg = load_config(SMOKE, [f"results_dir={tmp_path}", "tracking.enabled=false"])
    random_run(cfg)
    backbone = load_backbone(cfg, teacher_network_dir(cfg))
    noise, cond = seeded_noise(backbone.latent_shape, [1]), backbone.encode_prompts(["a red circle moving left"])
    loads, load_network = [], backbone.load_network
    backbone.load_network = lambda path: loads.append(path) or load_network(path)
    out = {}
    for name in ("dcm", "seme+dete@dcm"):
        request = SamplerRequest(cfg, methods.check_request(cfg, name, 4), 4, PhaseSchedule.from_config(cfg),
                                 backbone, layout.run_dir(cfg), layout.own_point(cfg))
        out[name] = build_sampler(request)(noise, cond, [1])
    assert torch.equal(out["dcm"], out["seme+dete@dcm"])
    assert loads == [layout.seme_dir(layout.run_dir(cfg), "tc") / layout.NETWORK] * 2  # SemE once per sampler


def test_pcm_4_and_pcm_8_sample_their_own_networks_on_their_own_phases(tmp_path):
    from benchmarks.run import random_run
    from dcm.backbones import load_backbone, teacher_network_dir
    from dcm.method_samplers import SamplerRequest, build_sampler
    from dcm.schedule import PhaseSchedule

    cfg = load_config(SMOKE, [f"results_dir={tmp_path}", "tracking.enabled=false"])
    random_run(cfg, (4, 8))
    backbone = load_backbone(cfg, teacher_network_dir(cfg))
    loads, load_network = [], backbone.load_network
    backbone.load_network = lambda path: loads.append(path) or load_network(path)
    schedules = {}
    for steps in (4, 8):
        request = SamplerRequest(cfg, methods.check_request(cfg, "pcm", steps), steps, PhaseSchedule.from_config(cfg),
                                 backbone, layout.run_dir(cfg), layout.own_point(cfg))
        build_sampler(request)
        schedules[steps] = request.schedule
    run = layout.run_dir(cfg)
    assert loads == [run / "pcm" / "4" / layout.NETWORK, run / "pcm" / "8" / layout.NETWORK]
    assert schedules == {4: [10, 8, 5, 2, 0], 8: [10, 9, 8, 6, 5, 4, 2, 1, 0]}  # one step per phase, N = 10
