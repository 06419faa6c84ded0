"""`builders deploy`: a folder of checkpoints (the container's /checkpoints) -> one repository, family by family."""
from __future__ import annotations

import json

import pytest

from builders.__main__ import main as builders_main
from builders.deploy import deploy, detect_family
from builders.embeddings import demo_checkpoint
from builders.llm.tiny import TinySpec, make_tiny_llama
from builders.progress import BuildError


def test_detect_family_from_checkpoint_files(tmp_path):
    (tmp_path / "sdxl").mkdir()
    (tmp_path / "sdxl" / "model_index.json").write_text("{}")
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "e5").mkdir()
    (tmp_path / "e5" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "empty").mkdir()
    assert [detect_family(tmp_path / n) for n in ("sdxl", "llama", "e5")] == ["sdxl", "llm", "embeddings"]
    with pytest.raises(BuildError, match="neither model_index.json"):
        detect_family(tmp_path / "empty")


def test_deploy_builds_each_checkpoint_under_its_folder_name(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    make_tiny_llama(checkpoints / "my-llama", TinySpec())
    (checkpoints / "my-encoder").symlink_to(demo_checkpoint(), target_is_directory=True)
    served = deploy(checkpoints, tmp_path / "repo", tmp_path / "work")
    assert served == ["my-encoder", "my-llama"]
    for model_id, task in (("my-llama", "text-generation"), ("my-encoder", "embeddings")):
        config = (tmp_path / "repo" / model_id / "config.pbtxt").read_text()
        assert f'name: "{model_id}"' in config and task in config


def test_deploy_cli_fails_clearly_without_checkpoints(tmp_path, capsys):
    assert builders_main(["deploy", "--checkpoints", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    assert "no checkpoint folders" in captured.out + captured.err
