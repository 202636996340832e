"""`--streaming`: the pretraining scripts on the simulator as an endless stream. Every rank and DataLoader worker
draws its own part of it, its images are normalised as a prepared split's rows are, a resumed run continues it
exactly, and bad flags are refused before anything is written."""

import json
import shutil

import pytest
import torch
from helpers import load_script, run_script
from safetensors.torch import load_file

from lens_hf import LensImageProcessor
from lens_hf.simulation import SimulatedLensDataset, get_preset
from lens_hf.training.arguments import DataArguments, RunArguments
from lens_hf.training.data import (
    ModelInputs,
    SimulatedStream,
    StreamLoader,
    check_streaming,
    load_streaming_dataset,
    stream_dataloader,
)

BATCH = 4


@pytest.fixture(scope="module")
def stream_data(tmp_path_factory):
    """Data flags of a small stream: Model II at 16 px, 8 prepared head images, 8 + 8 held out."""
    cache = tmp_path_factory.mktemp("stream_cache")
    return ["--dataset_config", "model_ii", "--dataset_overrides", "preset_overrides.image_size=16",
            "--num_train", "8", "--num_validation", "8", "--num_test", "8", "--cache_dir", str(cache),
            "--dataset_seed", "3"]


def tiny_run(batch=BATCH):
    return ["--streaming", "true", "--model_preset", "tiny", "--per_device_train_batch_size", str(batch),
            "--per_device_eval_batch_size", "8", "--disable_progress_bar", "true", "--logging_steps", "1",
            "--report_to", "none", "--learning_rate", "1e-3", "--warmup_ratio", "0"]


def small_stream(seed=5):
    return SimulatedStream(preset=get_preset("model_ii", image_size=16), seed=seed, config="model_ii")


def indices_of(loader: StreamLoader, batches: int) -> list[list[int]]:
    iterator = iter(loader)
    return [next(iterator)["row_index"].tolist() for _ in range(batches)]


# ------------------------------------------------------------------------------------------------ the stream
def test_dataset_start_and_state_dict():
    preset = get_preset("model_ii", image_size=16)
    whole = list(SimulatedLensDataset(preset, seed=1, length=10, block_size=3))
    later = SimulatedLensDataset(preset, seed=1, length=10, block_size=3)
    later.load_state_dict({"start": 4})
    assert later.state_dict() == {"start": 4} and json.loads(json.dumps(later.state_dict())) == {"start": 4}
    rest = list(later)
    assert [item["index"] for item in rest] == list(range(4, 10)) and len(later) == 6
    assert all(torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(whole[4:], rest))
    for bad in ({"start": -1}, {"start": 1.5}, {"begin": 3}, [3]):
        with pytest.raises(ValueError, match="start"):
            later.load_state_dict(bad)
    with pytest.raises(ValueError, match="start"):
        SimulatedLensDataset(preset, start=-2)


@pytest.mark.parametrize("world_size", [1, 2])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_every_rank_and_worker_draws_its_own_part_of_the_stream(world_size, num_workers):
    """Micro-step m of rank r trains on block m * world_size + r, whatever the number of workers: no image twice,
    none skipped, and the batches are the single-process ones."""
    processor = LensImageProcessor(size=16)
    steps = 5
    seen = {}
    for rank in range(world_size):
        loader = stream_dataloader(small_stream(), processor, "pretraining", BATCH, seed=0, num_workers=num_workers,
                                   rank=rank, world_size=world_size)
        for step, indices in enumerate(indices_of(loader, steps)):
            block = step * world_size + rank
            assert indices == list(range(block * BATCH, (block + 1) * BATCH)), (rank, step)
            assert not set(indices) & set(seen)
            seen.update(dict.fromkeys(indices, rank))
        assert loader.state_dict() == {"start": steps * world_size * BATCH}  # the same on every rank
    assert sorted(seen) == list(range(steps * world_size * BATCH))


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_loader_resumed_from_its_state_continues_the_stream_exactly(world_size):
    processor = LensImageProcessor(size=16)
    for rank in range(world_size):
        straight = stream_dataloader(small_stream(), processor, "pretraining", BATCH, seed=0, rank=rank,
                                     world_size=world_size)
        iterator = iter(straight)
        batches = [next(iterator) for _ in range(6)]
        stopped = stream_dataloader(small_stream(), processor, "pretraining", BATCH, seed=0, rank=rank,
                                    world_size=world_size)
        iterator = iter(stopped)
        for _ in range(2):
            next(iterator)
        state = json.loads(json.dumps(stopped.state_dict()))  # as a checkpoint stores it
        resumed = stream_dataloader(small_stream(), processor, "pretraining", BATCH, seed=0, rank=rank,
                                    world_size=world_size, num_workers=2)  # other workers: still the same stream
        resumed.load_state_dict(state)
        iterator = iter(resumed)
        for expected in batches[2:]:
            got = next(iterator)
            assert torch.equal(got["row_index"], expected["row_index"])
            assert torch.equal(got["pixel_values"], expected["pixel_values"])


def test_the_stream_is_the_train_split_and_gets_its_processing(stream_data, tmp_path):
    """The prepared head of the stream (--num_train rows) holds the stream's first images, and the stream's batches
    are what `ModelInputs` (the prepared-split path) makes of those rows: same processor, same normalisation."""
    from lens_hf.training.arguments import parse_arguments

    data_args, run_args = parse_arguments((DataArguments, RunArguments), [*stream_data, "--max_steps", "1"])
    check_streaming(data_args, run_args, "pretraining")
    dataset, stream = load_streaming_dataset(data_args, "pretraining")
    assert len(dataset["train"]) == 8 and len(dataset["validation"]) == 8
    processor = LensImageProcessor(size=12, crop_size=14)  # a crop and a resize, as a run may ask
    rows = ModelInputs(dataset["train"], processor, "pretraining")
    prepared = rows.collate(rows.__getitems__(list(range(8))))
    loader = stream_dataloader(stream, processor, "pretraining", 8, seed=0)
    streamed = next(iter(loader))
    assert torch.equal(streamed["pixel_values"], prepared["pixel_values"])
    assert torch.equal(streamed["row_index"], prepared["row_index"])
    assert streamed["pixel_values"].dtype == torch.float32 and set(streamed) == {"pixel_values", "row_index"}


# ------------------------------------------------------------------------------------------------ the scripts
def losses(folder):
    log = [json.loads(line) for line in (folder / "logs" / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in log if "loss" in r}


def assert_resumed_run_is_the_uninterrupted_one(main, arguments, root, weights="model.safetensors"):
    """Run 6 steps with checkpoints every 3 (root/straight); copy the step-3 checkpoint to a fresh folder and
    resume there with 2 DataLoader workers instead of none: steps 4-6 and the final weights are bit-identical."""
    common = [*arguments, "--max_steps", "6", "--save_steps", "3", "--save_total_limit", "5"]
    straight, resumed = root / "straight", root / "resumed"
    main([*common, "--output_dir", str(straight)])
    checkpoint = straight / "checkpoints" / "step_00000003"
    assert json.loads((checkpoint / "data_state.json").read_text()) == {"train_stream": {"start": 3 * BATCH}}
    shutil.copytree(checkpoint, resumed / "checkpoints" / checkpoint.name)
    main([*common, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest",
          "--dataloader_num_workers", "2"])
    assert sorted(losses(straight)) == list(range(1, 7)) and sorted(losses(resumed)) == [4, 5, 6]
    assert [losses(resumed)[s] for s in (4, 5, 6)] == [losses(straight)[s] for s in (4, 5, 6)]
    a, b = load_file(straight / weights), load_file(resumed / weights)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    return straight


def test_mae_pretraining_on_the_stream_end_to_end_and_resumed_exactly(stream_data, tmp_path):
    script = load_script("pretrain_mae.py")
    run = assert_resumed_run_is_the_uninterrupted_one(script.main, [*stream_data, *tiny_run(), "--seed", "1"],
                                                      tmp_path)
    record = json.loads((run / "run_config.json").read_text())
    assert record["StreamingArguments"] == {"streaming": True}
    assert record["derived"]["train_stream"]["images"] == 6 * BATCH and record["derived"]["total_steps"] == 6
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["summary"]) == {"train", "validation", "test"}
    assert metrics["summary"]["train"]["num_images"] == 8  # the prepared head of the stream
    assert all(v == v for v in metrics["summary"]["validation"].values() if isinstance(v, float))
    assert (run / "model.safetensors").exists() and (run / "plots" / "reconstruction_validation.png").exists()


def test_contrastive_pretraining_on_the_stream_end_to_end_and_resumed_exactly(stream_data, tmp_path):
    script = load_script("pretrain_contrastive.py")
    run = assert_resumed_run_is_the_uninterrupted_one(
        script.main, [*stream_data, *tiny_run(), "--backbone", "lens_mae", "--seed", "2"], tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert "top1" in metrics["summary"]["validation"]
    assert json.loads((run / "config.json").read_text())["lens_task"] == "contrastive"


def test_two_processes_under_accelerate_launch_share_the_stream(stream_data, tmp_path):
    """The real multi-process path (gloo ranks, 2 workers each): each step consumes one block per rank, and
    the checkpoint's position counts both."""
    out = tmp_path / "two"
    run_script("pretrain_mae.py", *stream_data, *tiny_run(), "--max_steps", "2", "--save_steps", "2",
               "--dataloader_num_workers", "2", "--output_dir", out, processes=2)
    checkpoint = out / "checkpoints" / "step_00000002"
    assert json.loads((checkpoint / "data_state.json").read_text()) == {"train_stream": {"start": 2 * 2 * BATCH}}
    record = json.loads((out / "run_config.json").read_text())
    assert record["derived"]["num_processes"] == 2 and record["derived"]["train_stream"]["images"] == 2 * 2 * BATCH
    assert (checkpoint / "random_states_1.pkl").exists() and (out / "model.safetensors").exists()


def test_a_file_run_records_no_streaming_group(tmp_path, stream_data):
    """Without --streaming the run's identity and record are what they were before the flag existed."""
    script = load_script("pretrain_mae.py")
    flags = [a for a in tiny_run() if a not in ("--streaming", "true")]
    script.main([*stream_data, *flags, "--max_steps", "1", "--save_steps", "0", "--output_dir", str(tmp_path / "f")])
    record = json.loads((tmp_path / "f" / "run_config.json").read_text())
    assert "StreamingArguments" not in record and "train_stream" not in record["derived"]


@pytest.mark.parametrize("flags, message", [
    (["--dataset_config", "model_iv"], r"'model_iv' is not a simulator preset; valid: \[.*'model_ii'.*'pretrain'"),
    (["--dataset_config", "sr_pairs"], "simulates lr/hr pairs"),
    (["--max_steps", "-1"], "--max_steps"),
    (["--dataset_name", "org/some-dataset"], "needs --dataset_name deeplense_sim"),
    (["--max_train_samples", "4"], "--max_train_samples selects rows"),
    (["--dataset_overrides", "n_train=5"], "--num_train"),
    (["--num_train", "0"], "--num_train must be >= 1"),
])
def test_bad_streaming_flags_are_refused_before_anything_is_written(stream_data, tmp_path, flags, message):
    script = load_script("pretrain_mae.py")
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=message):
        script.main([*stream_data, *tiny_run(), "--max_steps", "2", *flags, "--output_dir", str(out)])
    assert not out.exists()
