"""The command line as a user meets it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vlmrm.cli.main import main
from vlmrm.device_options import AUTO_DTYPE_RULE, INT8_RULE

ROOT = Path(__file__).parents[1]
CARTPOLE = str(ROOT / "configs" / "cartpole-dqn.yaml")


def test_help_lists_train(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "train" in capsys.readouterr().out


def test_config_error_is_one_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "env: {name: cartpole}\nreward: {target_prompts: [x], alpah: 0.5}\nrl: {algorithm: dqn, total_steps: 5}\n"
    )
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error: Invalid config" in err and "Did you mean 'reward.alpha'?" in err
    assert "Traceback" not in err


def test_bad_override_and_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(ROOT / "configs" / "cartpole.yaml"), "--set", "rl.total_steps"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "no/such/config.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def labelled_dataset(root: Path) -> Path:
    """Four flat-coloured frames labelled yes, yes, no, no, written the way ``vlmrm dataset`` writes them."""
    from PIL import Image

    (root / "frames").mkdir(parents=True)
    records = []
    for i, colour in enumerate([(255, 0, 0), (200, 0, 0), (0, 0, 255), (0, 0, 200)]):
        name = f"frames/{i:04d}.png"
        Image.new("RGB", (16, 16), colour).save(root / name)
        records.append({"index": i, "frame": name, "episode": 0, "step": i + 1, "state": list(colour)})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "dataset.json").write_text(json.dumps({"env": "colours", "render_size": 16}))
    labels = {r["frame"]: "yes" if i < 2 else "no" for i, r in enumerate(records)}
    (root / "labels.json").write_text(json.dumps({"task": "t", "sentence": "a red square", "labels": labels}))
    return root


def command(name: str, tmp_path: Path, model: str, device: str = "auto") -> list[str]:
    """``vlmrm NAME`` loading ``model`` on ``device``, with everything else small."""
    if name == "train":
        return ["train", CARTPOLE, "--set", f"reward.model={model}", "--set", f"reward.device={device}",
                "--run-dir", str(tmp_path / "run")]  # fmt: skip
    if name == "landscape":
        return ["landscape", "cartpole", "--model", model, "--device", device, "--out", str(tmp_path / "out")]
    if name == "epic":
        return ["epic", str(labelled_dataset(tmp_path / "ds")), "--model", model, "--device", device]
    return ["bench", "cartpole", "--model", model, "--device", device, "--steps", "1", "--repeats", "1"]


def one_error_line(err: str) -> str:
    """The message of the single ``error:`` line in ``err``; no traceback."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["landscape", "epic", "bench", "train"])
def test_cuda_on_a_machine_without_it(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(command(name, tmp_path, "tiny-random", device="cuda")) == 2
    err = capsys.readouterr().err
    line = one_error_line(err)
    assert "device 'cuda' was requested but CUDA is not available" in line and "use cpu or auto" in line
    assert err.rstrip().endswith(line)  # one line: nothing of the message follows it
    assert not (tmp_path / "run").exists()  # train refused before touching the disk


@pytest.mark.parametrize("name", ["landscape", "epic", "bench", "train"])
def test_model_hint_names_the_option_of_the_command(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # HF_HUB_OFFLINE=1 (conftest) and nothing cached: the model cannot be had here.
    assert main(command(name, tmp_path, "openai/clip-vit-base-patch32")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Cannot load model 'openai/clip-vit-base-patch32': HF_HUB_OFFLINE is set" in err
    expected = "--set reward.model=tiny-random" if name == "train" else "--model tiny-random"
    assert f"  - or use {expected} to test the pipeline without weights" in err, err
    assert err.count("tiny-random") == 1


@pytest.mark.parametrize("name", ["landscape", "epic", "bench"])
def test_dtype_help_states_the_auto_rule(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert AUTO_DTYPE_RULE in help_text and "at least 1.1 times as fast as fp32" in help_text
    assert INT8_RULE in help_text
    assert "support it" not in help_text


def test_train_help_names_every_config_section_and_field_and_the_docs_page(capsys: pytest.CaptureFixture[str]) -> None:
    from vlmrm.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "docs/configuration.md" in out and "--print-config" in out
    for section, field in TrainConfig.model_fields.items():
        assert f"\n  {section} " in out, section
        for name in field.annotation.model_fields:  # type: ignore[union-attr]
            assert name in out, f"{section}.{name}"


@pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")
def test_print_config_prints_the_resolved_config_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    monkeypatch.chdir(tmp_path)
    argv = ["train", CARTPOLE, "--set", "reward.model=tiny-random", "--set", "rl.seed=1", "--print-config"]
    shortcuts = ["--seed", "3", "--device", "cpu", "--n-envs", "2", "--total-steps", "500"]
    assert main([*argv, *shortcuts]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["rl"]["seed"] == 3  # the shortcut wins over --set
    assert (config["reward"]["device"], config["rl"]["n_envs"], config["rl"]["total_steps"]) == ("cpu", 2, 500)
    assert config["env"]["render_size"] == 64 and config["logging"]["run_dir"].startswith("runs/cartpole-")  # resolved
    assert list(tmp_path.iterdir()) == []


def test_shortcuts_are_checked_as_their_set_forms(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", CARTPOLE, "--total-steps", "0", "--print-config"]) == 2
    assert "rl.total_steps" in capsys.readouterr().err
    assert main(["train", "--resume", "somewhere", "--print-config"]) == 2
    assert "--print-config shows a new run's config" in capsys.readouterr().err
