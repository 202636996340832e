"""The local Hub server: the round trips huggingface_hub, transformers and datasets make against it."""
import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import hub_server


def _raw(server, method, path, body=None, headers=None, token=True):
    """One raw HTTP call, returning (status, headers, body bytes), for what the clients never send."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    request = urllib.request.Request(server.url + path, data=data, method=method)
    if token:
        request.add_header("Authorization", "Bearer hf_fake_test_token")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


@pytest.fixture
def api(local_hub):
    from huggingface_hub import HfApi

    return HfApi()


def test_whoami_and_endpoint_come_from_conftest(local_hub, api):
    assert os.environ["HF_ENDPOINT"] == local_hub.url
    assert api.whoami()["name"] == hub_server.USER_NAME


def test_upload_folder_snapshot_download_and_commit_history(local_hub, api, tmp_path):
    from huggingface_hub import snapshot_download

    repo_url = api.create_repo("org/hub-folder")
    assert repo_url == f"{local_hub.url}/org/hub-folder"
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("small text")
    large = np.random.default_rng(0).bytes(150_000)
    (folder / "sub" / "blob.dat").write_bytes(large)

    commit = api.upload_folder(folder_path=folder, repo_id="org/hub-folder", commit_message="first upload")
    snapshot = Path(snapshot_download("org/hub-folder"))
    assert (snapshot / "sub" / "blob.dat").read_bytes() == large
    assert (snapshot / "notes.txt").read_text() == "small text"

    entries = {e.path: e for e in api.list_repo_tree("org/hub-folder", recursive=True)}
    assert set(entries) == {".gitattributes", "notes.txt", "sub", "sub/blob.dat"}
    # regular files carry the git blob id; the >100 kB file went through LFS with its sha256
    assert entries["notes.txt"].blob_id == hashlib.sha1(b"blob 10\x00small text").hexdigest()
    assert entries["notes.txt"].lfs is None
    assert entries["sub/blob.dat"].lfs.sha256 == hashlib.sha256(large).hexdigest()
    assert [e.path for e in api.list_repo_tree("org/hub-folder")] == [".gitattributes", "notes.txt", "sub"]

    (folder / "notes.txt").write_text("second version")
    second = api.upload_folder(folder_path=folder, repo_id="org/hub-folder", commit_message="second upload")
    history = api.list_repo_commits("org/hub-folder")
    assert [c.title for c in history] == ["second upload", "first upload", "initial commit"]
    assert [c.commit_id for c in history[:2]] == [second.oid, commit.oid]
    assert all(len(c.commit_id) == 40 for c in history)
    # an old revision still serves the old bytes
    from huggingface_hub import hf_hub_download

    assert open(hf_hub_download("org/hub-folder", "notes.txt", revision=commit.oid)).read() == "small text"
    assert open(hf_hub_download("org/hub-folder", "notes.txt")).read() == "second version"


def test_missing_file_repo_and_revision_raise_the_hub_errors(local_hub, api):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    api.create_repo("org/hub-errors")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/hub-errors", "absent.txt")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/no-such-repo", "config.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/hub-errors", ".gitattributes", revision="no-such-branch")
    status, headers, _ = _raw(local_hub, "HEAD", "/org/hub-errors/resolve/main/absent.txt")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    status, headers, _ = _raw(local_hub, "GET", "/api/datasets/org/hub-errors")
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"


def test_writes_need_a_token_and_private_repos_are_hidden(local_hub, api):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    anonymous = HfApi(token=False)
    with pytest.raises(HfHubHTTPError, match="401"):
        anonymous.create_repo("org/hub-anon")
    api.create_repo("org/hub-private", private=True)
    assert api.model_info("org/hub-private").private is True
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("org/hub-private")
    with pytest.raises(HfHubHTTPError, match="409"):
        api.create_repo("org/hub-private")
    api.create_repo("org/hub-private", exist_ok=True)


def test_create_pr_commits_to_a_pr_ref_and_leaves_main(local_hub, api):
    from huggingface_hub import hf_hub_download

    api.create_repo("org/hub-pr")
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="f.txt", repo_id="org/hub-pr")
    regular = api.upload_file(path_or_fileobj=b"v2", path_in_repo="f.txt", repo_id="org/hub-pr", create_pr=True)
    with_lfs = api.upload_file(path_or_fileobj=b"\0" * 16, path_in_repo="w.safetensors", repo_id="org/hub-pr",
                               create_pr=True)
    assert regular.pr_revision == "refs/pr/1" and with_lfs.pr_revision == "refs/pr/2"
    assert open(hf_hub_download("org/hub-pr", "f.txt")).read() == "v1"
    assert open(hf_hub_download("org/hub-pr", "f.txt", revision="refs/pr/1")).read() == "v2"
    refs = api.list_repo_refs("org/hub-pr", include_pull_requests=True)
    assert [r.ref for r in refs.pull_requests] == ["refs/pr/1", "refs/pr/2"]
    details = api.get_discussion_details("org/hub-pr", 2)
    assert details.is_pull_request and details.target_branch == "refs/heads/main"


def test_transformers_push_to_hub_and_from_pretrained_round_trip(local_hub):
    from transformers import ViTMAEConfig, ViTMAEModel

    torch.manual_seed(0)
    config = ViTMAEConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          image_size=16, patch_size=8, num_channels=1, decoder_hidden_size=16,
                          decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=32)
    model = ViTMAEModel(config)
    model.push_to_hub("org/hub-tiny-vitmae")
    loaded = ViTMAEModel.from_pretrained("org/hub-tiny-vitmae")
    original, reloaded = model.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    assert all(torch.equal(original[k], reloaded[k]) for k in original)


def test_datasetdict_push_to_hub_and_load_dataset_round_trip(local_hub):
    import datasets

    features = datasets.Features({"image": datasets.Array3D((1, 8, 8), "float32"),
                                  "label": datasets.ClassLabel(names=["no_sub", "cdm"])})
    rng = np.random.default_rng(0)
    original = datasets.DatasetDict({
        split: datasets.Dataset.from_dict({"image": rng.random((n, 1, 8, 8), dtype=np.float32),
                                           "label": rng.integers(0, 2, n)}, features=features)
        for split, n in [("train", 6), ("test", 3)]
    })
    original.push_to_hub("org/hub-array3d")
    loaded = datasets.load_dataset("org/hub-array3d")
    assert set(loaded) == {"train", "test"}
    for split in original:
        assert loaded[split].features == features
        got, want = loaded[split].with_format("numpy")[:], original[split].with_format("numpy")[:]
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["label"], want["label"])


def test_model_card_push_and_load(local_hub, api):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    data = ModelCardData(license="mit", library_name="transformers", pipeline_tag="image-classification",
                         model_name="hub-card", eval_results=[EvalResult(
                             task_type="image-classification", dataset_type="org/lens-sim", dataset_name="sim",
                             dataset_split="test", metric_type="roc_auc", metric_value=0.9)])
    api.create_repo("org/hub-card")
    ModelCard.from_template(data, model_id="hub-card").push_to_hub("org/hub-card")
    loaded = ModelCard.load("org/hub-card")
    assert loaded.data.eval_results[0].metric_value == 0.9
    assert api.model_info("org/hub-card").pipeline_tag == "image-classification"


def test_validate_yaml_rejects_a_malformed_model_index(local_hub):
    bad = "---\nmodel-index:\n- name: x\n  results:\n  - task: {type: image-classification}\n---\n"
    status, _, body = _raw(local_hub, "POST", "/api/validate-yaml", {"content": bad, "repoType": "model"})
    assert status == 400 and b"dataset needs 'name' and 'type'" in body and b"metrics" in body
    status, _, body = _raw(local_hub, "POST", "/api/validate-yaml", {"content": "---\na: [\n---\n"})
    assert status == 400 and b"Invalid YAML" in body


def test_lfs_content_is_checked_against_its_oid(local_hub, api):
    api.create_repo("org/hub-lfs-check")
    content = b"payload bytes"
    wrong_oid = hashlib.sha256(b"something else").hexdigest()
    status, _, body = _raw(local_hub, "PUT", f"/lfs-upload/models/org/hub-lfs-check/{wrong_oid}", content)
    assert status == 400 and hashlib.sha256(content).hexdigest().encode() in body
    commit = (json.dumps({"key": "header", "value": {"summary": "dangling pointer"}}) + "\n"
              + json.dumps({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": wrong_oid,
                                                         "size": 3}}) + "\n").encode()
    status, _, body = _raw(local_hub, "POST", "/api/models/org/hub-lfs-check/commit/main", commit,
                           {"Content-Type": "application/x-ndjson"})
    assert status == 400 and b"never uploaded" in body
    status, _, _ = _raw(local_hub, "POST", "/api/models/org/hub-lfs-check/commit/main?create_pr=1", commit,
                        {"Content-Type": "application/x-ndjson"})
    assert status == 400 and list(api.get_repo_discussions("org/hub-lfs-check")) == []  # no empty PR left behind
    assert [c.title for c in api.list_repo_commits("org/hub-lfs-check")] == ["initial commit"]


def test_stale_parent_commit_is_refused(local_hub, api):
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    api.create_repo("org/hub-parent")
    first = api.model_info("org/hub-parent").sha
    api.upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id="org/hub-parent")
    with pytest.raises(HfHubHTTPError, match="412"):
        api.create_commit("org/hub-parent", [CommitOperationAdd("b.txt", b"b")], commit_message="late",
                          parent_commit=first)


def test_range_reads_through_hf_file_system(local_hub, api):
    from huggingface_hub import HfFileSystem

    api.create_repo("org/hub-range")
    api.upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits.txt", repo_id="org/hub-range")
    with HfFileSystem().open("org/hub-range/digits.txt", block_size=4) as handle:
        handle.seek(3)
        assert handle.read(4) == b"3456"
    status, headers, body = _raw(local_hub, "GET", "/org/hub-range/resolve/main/digits.txt",
                                 headers={"Range": "bytes=-3"})
    assert status == 206 and body == b"789" and headers["Content-Range"] == "bytes 7-9/10"


def test_serve_picks_a_free_port_and_shuts_down(tmp_path):
    server = hub_server.serve(port=0, root=tmp_path / "store")
    try:
        status, _, body = _raw(server, "GET", "/api/whoami-v2")
        assert status == 200 and json.loads(body)["name"] == hub_server.USER_NAME
        assert server.root == tmp_path / "store"
    finally:
        server.shutdown()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "/api/whoami-v2", timeout=2)


def test_branches_and_repo_deletion(local_hub, api):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    api.create_repo("org/hub-branches", repo_type="dataset")
    api.create_branch("org/hub-branches", branch="v1", repo_type="dataset")
    with pytest.raises(HfHubHTTPError, match="409"):
        api.create_branch("org/hub-branches", branch="v1", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"on v1", path_in_repo="x.txt", repo_id="org/hub-branches",
                    repo_type="dataset", revision="v1")
    assert open(hf_hub_download("org/hub-branches", "x.txt", repo_type="dataset", revision="v1")).read() == "on v1"
    assert "x.txt" not in api.list_repo_files("org/hub-branches", repo_type="dataset")
    refs = api.list_repo_refs("org/hub-branches", repo_type="dataset")
    assert sorted(b.name for b in refs.branches) == ["main", "v1"]
    api.delete_repo("org/hub-branches", repo_type="dataset")
    assert not api.repo_exists("org/hub-branches", repo_type="dataset")
    assert not (local_hub.root / "datasets" / "org" / "hub-branches").exists()
