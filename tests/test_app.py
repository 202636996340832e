"""The app (lens_hf.app) as a person uses it: the real server started on a free local port, driven through
gradio_client (every endpoint, bad inputs included, the server answering after each) and through a real headless
Chromium (upload a .npy, press the button, read the predicted label, save a screenshot)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from helpers import REPO_ROOT, free_port

CLASSES = {"axion", "cdm", "no_sub"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from lens_hf.app.examples import write_example_runs

    return write_example_runs(tmp_path_factory.mktemp("app_runs"))


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    """`python -m lens_hf.app RUN ... --port P` (what `make app` runs), until the page answers."""
    port = free_port()
    log = tmp_path_factory.mktemp("app_log") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(REPO_ROOT)}
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "lens_hf.app", *map(str, runs.values()), "--port", str(port)],
                                   stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the app exited ({process.returncode}):\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        raise AssertionError(f"the app did not answer within 180 s:\n{log.read_text()[-4000:]}")
    yield url, log
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Image files of every kind the app reads, and bad ones."""
    from astropy.io import fits
    from PIL import Image

    from lens_hf.data.sample_layouts import save_axion_pair
    from lens_hf.simulation import get_preset, simulate

    folder = tmp_path_factory.mktemp("app_images")
    lens = simulate(get_preset("model_ii"), n=1, seed=5).images[0, 0].numpy()
    np.save(folder / "lens.npy", lens)
    np.save(folder / "channel_last.npy", lens[:, :, None])
    save_axion_pair(folder / "axion.npy", lens.astype(np.float64), 10**-22.5)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(lens)]).writeto(folder / "lens.fits")
    Image.fromarray((255 * (lens - lens.min()) / np.ptp(lens)).astype(np.uint8)).save(folder / "lens.png")
    np.save(folder / "four_d.npy", np.zeros((2, 2, 8, 8), np.float32))
    nan = lens.copy()
    nan[3, 3] = np.nan
    np.save(folder / "nan.npy", nan)
    (folder / "corrupt.npy").write_bytes(b"\x93NUMPY not really" + os.urandom(64))
    (folder / "corrupt.fits").write_bytes(b"SIMPLE  =                    T" + os.urandom(100))
    (folder / "notes.txt").write_text("not an image")
    np.save(folder / "three_bands.npy", np.stack([lens] * 3))
    return folder


def predict(client, path, hdu=-1, stretch="asinh", mask_ratio=0.75):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), hdu, stretch, mask_ratio, api_name="/predict_upload")


def assert_answers_everything(result):
    summary, label, image, probabilities, reconstruction, super_resolution = result
    assert "**Error" not in summary, summary
    assert label in CLASSES
    assert "predicted **" in summary and "with D4 TTA" in summary and "axion mass log10(m/eV) = **" in summary
    assert all(plot is not None for plot in (image, probabilities, reconstruction, super_resolution)), result


def test_every_upload_kind_gets_every_answer(client, images):
    for name in ("lens.npy", "channel_last.npy", "axion.npy", "lens.png"):
        assert_answers_everything(predict(client, images / name))
    summary = predict(client, images / "axion.npy")[0]
    assert "the file carries its axion mass, log10(m/eV) = -22.500" in summary
    assert_answers_everything(predict(client, images / "lens.fits"))  # the first image HDU
    assert_answers_everything(predict(client, images / "lens.fits", hdu=1))
    assert "HDU 5 does not exist" in predict(client, images / "lens.fits", hdu=5)[0]
    for stretch in ("linear", "log"):
        assert_answers_everything(predict(client, images / "lens.npy", stretch=stretch, mask_ratio=0.3))


def test_a_simulated_image_shows_its_truth_beside_the_prediction(client):
    summary, label, *plots = client.predict("model_ii", "axion", 7, -22.3, "asinh", 0.5, api_name="/simulate")
    assert "**True:** class **axion**, log10(m/eV) = **-22.300**" in summary and label in CLASSES
    assert all(plot is not None for plot in plots)
    summary, *_ = client.predict("model_i", "no_sub", 1, -23.0, "linear", 0.5, api_name="/simulate")
    assert "**True:** class **no_sub**" in summary and "log10(m/eV)" not in summary.split("**True:**")[1].split("\n")[0]
    summary, *_ = client.predict("model_ii", "vortex", 1, -23.0, "linear", 0.5, api_name="/simulate")
    assert summary.startswith("**Error:**") and "has classes axion, cdm, no_sub" in summary
    summary, label, *_ = client.predict("lens_finding", "lens", 2, -23.0, "linear", 0.5, api_name="/simulate")
    assert "**True:** class **lens**" in summary and summary.count("takes 1-band images; this image has 3") == 4
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="less than minimum value -24.0"):  # the slider's own range, checked by gradio
        client.predict("model_ii", "axion", 1, -30.0, "linear", 0.5, api_name="/simulate")
    from lens_hf.app.inputs import AppInputError, simulate_image

    with pytest.raises(AppInputError, match=r"must lie in \[-24.0, -22.0\]"):
        simulate_image("model_ii", "axion", 1, -30.0)
    with pytest.raises(AppInputError, match="seed must be a whole number"):
        simulate_image("model_ii", "axion", 1.5, -23.0)
    assert_answers_everything(client.predict("model_iii", "cdm", 4, -23.0, "log", 0.9, api_name="/simulate"))


@pytest.mark.parametrize("name,message", [
    ("four_d.npy", "expected an image"),
    ("nan.npy", "NaN"),
    ("corrupt.npy", "corrupt.npy"),
    ("corrupt.fits", "not a readable FITS file"),
])
def test_bad_uploads_are_a_message_in_the_page_and_the_server_keeps_serving(client, images, name, message):
    summary, label, *plots = predict(client, images / name)
    assert summary.startswith("**Error:**") and message in summary, summary
    assert "Traceback" not in summary and label == "" and all(plot is None for plot in plots)
    assert_answers_everything(predict(client, images / "lens.npy"))  # the next request is answered


def test_a_file_of_another_type_is_refused_by_the_upload_box(client, images):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Invalid file type"):
        predict(client, images / "notes.txt")
    from lens_hf.app.inputs import AppInputError, read_upload

    with pytest.raises(AppInputError, match="unknown file type .txt"):  # and by the reader behind it
        read_upload(images / "notes.txt")
    assert_answers_everything(predict(client, images / "lens.npy"))


def test_a_model_that_does_not_fit_the_image_says_so_and_the_others_answer(client, images, runs):
    summary, label, image, *plots = predict(client, images / "three_bands.npy")
    assert summary.count("takes 1-band images; this image has 3 band(s)") == len(runs)
    assert image is not None and label == ""


def test_loading_models_from_the_box(client, runs, tmp_path):
    status = client.predict(f"{runs['classifier']}, {tmp_path / 'missing'}", api_name="/load_models")
    assert "`classifier`: classification, 64 px, 1 band(s)" in status and "`missing` did not load" in status
    status = client.predict("", api_name="/load_models")
    assert "No models are loaded. Run `make demo` first" in status
    summary = client.predict("model_ii", "cdm", 1, -23.0, "asinh", 0.75, api_name="/simulate")[0]
    assert summary.startswith("**Error:**") and "make demo" in summary
    status = client.predict(", ".join(map(str, runs.values())), api_name="/load_models")
    assert status.count("band(s)") == 4


def test_without_a_demo_the_page_says_to_run_make_demo(tmp_path):
    from lens_hf.app.ui import AppState, default_sources

    assert default_sources(tmp_path) == []
    assert "Run `make demo` first" in AppState([]).status()


def chromium_and_driver():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, None, "selenium is not installed"
    if not browser or not driver:
        return None, None, "no chromium / chromedriver on this machine (.ci/run installs Debian's)"
    return browser, driver, None


def test_in_a_real_browser_upload_press_and_read_the_label(server, images, tmp_path):
    browser, driver_path, why = chromium_and_driver()
    if why:
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(server[0])
        wait = WebDriverWait(driver, 120)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#upload input[type=file]"))
        upload.send_keys(str(images / "lens.npy"))
        wait.until(lambda d: ".npy" in d.find_element(By.ID, "upload").text)  # the name shows once uploaded
        driver.find_element(By.CSS_SELECTOR, "#predict-upload").click()
        box = driver.find_element(By.CSS_SELECTOR, "#prediction textarea, #prediction input")
        wait.until(lambda d: box.get_attribute("value"))
        assert box.get_attribute("value") in CLASSES
        wait.until(lambda d: "with D4 TTA" in d.find_element(By.ID, "summary").text)
        assert "Error" not in driver.find_element(By.ID, "summary").text
        driver.save_screenshot(str(tmp_path / "app.png"))
        assert (tmp_path / "app.png").stat().st_size > 10_000
        # a bad file: the message appears in the page, no spinner stays
        driver.find_element(By.CSS_SELECTOR, "#upload button[aria-label='Clear']").click()
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#upload input[type=file]"))
        upload.send_keys(str(images / "nan.npy"))
        wait.until(lambda d: "nan" in d.find_element(By.ID, "upload").text)
        driver.find_element(By.CSS_SELECTOR, "#predict-upload").click()
        wait.until(lambda d: "Error" in d.find_element(By.ID, "summary").text)
        assert "NaN" in driver.find_element(By.ID, "summary").text
    finally:
        driver.quit()


def test_the_stretches_map_the_image_range_onto_the_colour_scale():
    from lens_hf.app.figures import stretch_norm

    values = np.linspace(-1.0, 3.0, 101)
    for stretch in ("linear", "log", "asinh"):
        norm = stretch_norm(-1.0, 3.0, stretch)
        mapped = np.asarray(norm(values), dtype=float)
        assert mapped[0] == pytest.approx(0.0, abs=1e-12) and mapped[-1] == pytest.approx(1.0)
        assert np.all(np.diff(mapped) > 0), stretch  # monotonic: brighter is always lighter
        if stretch != "linear":  # the colour bar reads data values: the inverse undoes the stretch
            np.testing.assert_allclose(norm.inverse(mapped), values, atol=1e-9)
            assert mapped[25] > (values[25] + 1) / 4  # faint pixels get more of the scale than a linear map gives
    with pytest.raises(ValueError, match="stretch must be one of"):
        stretch_norm(0.0, 1.0, "sqrt")


def test_the_space_folder_is_a_gradio_space_that_builds(runs):
    import configparser

    import yaml

    folder = REPO_ROOT / "app"
    front = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and (folder / front["app_file"]).is_file()
    assert str(front["sdk_version"]).startswith("6.")
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    wheel = f"./lens_hf-{setup['metadata']['version']}-py3-none-any.whl"
    requirements = [line.split("#")[0].strip() for line in (folder / "requirements.txt").read_text().splitlines()]
    assert wheel in requirements and any(r.startswith("gradio") for r in requirements)
    code = ("import runpy, sys; page = runpy.run_path(sys.argv[1])['demo']; "
            "print(type(page).__name__, sorted(d['api_name'] for d in page.config['dependencies'] if d.get('api_name')))")
    env = {**os.environ, "LENS_HF_MODELS": ",".join(map(str, runs.values())), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code, str(folder / "app.py")], capture_output=True, text=True,
                            env=env, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    kind, names = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert kind == "Blocks" and {"load_models", "predict_upload", "simulate"} <= set(eval(names))


def test_the_app_speed_benchmark_prints_its_figures():
    """benchmarks/bench_app.py end to end (its timing decides ok/below, not this test: CI machines are noisy)."""
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "bench_app.py")], capture_output=True,
                            text=True, cwd=REPO_ROOT, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode in (0, 1), result.stderr[-3000:]
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("app_")}
    seconds = float(lines["app_predict_64px_seconds"].split()[1])
    assert 0 < seconds and ("target < 1 s: ok" in lines["app_predict_64px_seconds"]) == (result.returncode == 0)
    assert float(lines["app_models_alone_seconds"].split()[1]) > 0
