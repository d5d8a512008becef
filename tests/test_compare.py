"""`judge compare`: configuration merging, sweep roles, run names, config files (fast tests)."""

from __future__ import annotations

import json

import pytest

from judge.compare import (compressed_roles, control_engine_options, default_run_name,
                           load_config_file, make_config)
from judge.config import EngineOptions, ModelEntry
from judge.errors import ConfigError


def test_single_and_sweep_roles():
    assert compressed_roles([ModelEntry(spec="a")]) == ["compressed"]
    roles = compressed_roles([ModelEntry(spec="/ckpt/Llama-3-8B-AWQ/"), ModelEntry(spec="x-int8"),
                              ModelEntry(spec="other/x-int8")])
    assert roles == ["compressed-llama-3-8b-awq", "compressed-x-int8", "compressed-x-int8-2"]


def test_flags_override_file_and_none_means_not_given(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(
        'baseline = "base"\ncompressed = ["c1", {spec = "c2", engine = {dtype = "float16"}}]\n'
        'questions = "judge-80"\n[generation]\nmax_new_tokens = 99\nsampling = "mt-bench"\n'
        '[judge]\nspec = "gpt-4o"\nconcurrency = 4\n', encoding="utf-8")
    cfg = make_config(load_config_file(toml), {
        "questions": None, "judge": {"spec": None, "concurrency": 16},
        "generation": {"max_new_tokens": None, "seed": 5}})
    assert cfg.questions == "judge-80" and cfg.judge.spec == "gpt-4o" and cfg.judge.concurrency == 16
    assert cfg.generation.max_new_tokens == 99 and cfg.generation.seed == 5
    assert cfg.generation.sampling == "mt-bench"
    assert [c.spec for c in cfg.compressed] == ["c1", "c2"]
    assert cfg.engine_for(cfg.compressed[1]).dtype == "float16"
    assert cfg.engine_for(cfg.compressed[0]) == EngineOptions()
    assert default_run_name(cfg) == "base__vs__c1__+1__judge-80"


def test_manifest_reproduces_config(tmp_path):
    cfg = make_config({}, {"baseline": "b", "compressed": ["c"], "control": "batch",
                           "divergence": {"top_k": "full"}})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"format_version": 1, "config": {"compare": cfg.model_dump(mode="json")}}))
    again = make_config(load_config_file(manifest), {})
    assert again == cfg and again.divergence.top_k == "full"


@pytest.mark.parametrize("text, fragment", [
    ('baseline = "b"\n', "compressed"),
    ('baseline = "b"\ncompressed = ["c"]\n[judge]\nmode = "triple"\n', "judge.mode"),
    ('baseline = "b"\ncompressed = []\n', "compressed"),
    ('baseline = "b"\ncompressed = ["c"]\nsurprise = 1\n', "surprise"),
])
def test_bad_config_is_one_line(tmp_path, text, fragment):
    p = tmp_path / "run.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        make_config(load_config_file(p), {})
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_bad_toml_names_file_and_line(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('baseline = "b"\ncompressed = [\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{p}:\d+: invalid TOML"):
        load_config_file(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "none.toml")
    j = tmp_path / "x.json"
    j.write_text("{}")
    with pytest.raises(ConfigError, match="config.compare"):
        load_config_file(j)


def test_control_changes_only_what_should_not_matter():
    cfg = make_config({}, {"baseline": "b", "compressed": ["c"], "control": "engine",
                           "engine": {"engine": "vllm", "dtype": "bfloat16"}})
    ctl = control_engine_options(cfg)
    assert ctl.engine == "hf" and ctl.dtype == "bfloat16"
    cfg = cfg.model_copy(update={"control": "batch"})
    ctl = control_engine_options(cfg)
    assert ctl.engine == "vllm" and ctl.chunk_size == 1 and ctl.batch_size == 1


def test_control_engine_follows_what_auto_runs(monkeypatch):
    import judge.generate

    cfg = make_config({}, {"baseline": "b", "compressed": ["c"], "control": "engine"})
    monkeypatch.setattr(judge.generate, "auto_engine", lambda: ("hf", "no vLLM"))
    assert control_engine_options(cfg).engine == "vllm"
    monkeypatch.setattr(judge.generate, "auto_engine", lambda: ("vllm", "installed"))
    assert control_engine_options(cfg).engine == "hf"


def test_local_judge_without_vllm_fails_before_any_work(tmp_path, monkeypatch):
    """Where vLLM is missing (a GPU machine with transformers alone) a local: judge cannot be
    served: compare says so at once instead of after generation and divergence."""
    import judge.generate
    from judge.compare import compare
    from judge.errors import JudgeSpecError

    monkeypatch.setattr(judge.generate, "vllm_available", lambda: False)
    cfg = make_config({}, {"baseline": "b", "compressed": ["c"], "run": str(tmp_path / "run")})
    with pytest.raises(JudgeSpecError, match="local: judge is served by vLLM"):
        compare(cfg, progress=False, say=lambda *_: None)
    assert not (tmp_path / "run").exists()


def test_judge_base_url_one_string_or_a_fleet(tmp_path):
    """A single URL stays a string everywhere (configs and manifests written before fleets); a
    fleet is a list; a flag given once is recorded as a string."""
    from judge.cli.compare import base_url_value
    from judge.grade import parse_judge_spec

    toml = tmp_path / "run.toml"
    toml.write_text('baseline = "b"\ncompressed = ["c"]\n[judge]\nspec = "m"\n'
                    'base_url = "http://127.0.0.1:8000/v1"\n', encoding="utf-8")
    one = make_config(load_config_file(toml), {})
    assert one.judge.base_url == "http://127.0.0.1:8000/v1"
    assert parse_judge_spec(one.judge.spec, one.judge.base_url).base_urls == ("http://127.0.0.1:8000/v1",)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"config": {"compare": one.model_dump(mode="json")}}))
    assert make_config(load_config_file(manifest), {}) == one  # an old manifest reproduces its run
    fleet = make_config(load_config_file(toml), {"judge": {"base_url": base_url_value(
        ["http://a:1/v1", "http://b:2/v1"])}})
    assert fleet.judge.base_url == ["http://a:1/v1", "http://b:2/v1"]
    assert parse_judge_spec("m", fleet.judge.base_url).recorded_base_url() == ["http://a:1/v1", "http://b:2/v1"]
    assert base_url_value(["http://a:1/v1"]) == "http://a:1/v1"
    assert base_url_value([]) is None and base_url_value(None) is None
    for bad in ([], ["http://a:1/v1", 5], 5):
        with pytest.raises(ConfigError, match="judge.base_url"):
            make_config({"baseline": "b", "compressed": ["c"], "judge": {"base_url": bad}}, {})


def test_service_spec_passes_a_fleet_through(tmp_path):
    from judge.service.spec import ComparisonSpec, check_spec

    urls = ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
    cfg, _ = check_spec(ComparisonSpec(config={"baseline": "b", "compressed": ["c"],
                                               "judge": {"spec": "m", "base_url": urls}}),
                        tmp_path, "c1")
    assert cfg.judge.base_url == urls
