"""One Model shared by threads (issue 18): Model.segment from several threads at once (paths,
encoded bytes through the private engine, raw RGB), two Engines on one Model, and close() while
calls run. Every answer must equal the single-threaded one. Before the fix the private engine was
created in a race and held one request (threads got LISA_ERR_BUSY), and two engines on one model
aborted in the library. Under ThreadSanitizer in CI (LISA_SANITIZE_THREAD)."""

import os
import threading

import lisa

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("LISA_TESTDATA_DIR", os.path.join(HERE, "..", "..", "tests", "data"))
IMAGES = os.path.join(DATA, "images")
QUERIES = ["What is the cat doing? Please output segmentation mask.", "Segment the rocket.",
           "Where would I put the milk? Please respond with segmentation mask."]


def load():
    return lisa.Model(os.path.join(DATA, "tiny-lisa"), vision_tower=os.path.join(DATA, "tiny-clip"), backend="cpu",
                      threads=1)


def inputs():
    """(image, query, kwargs) triples: a path, encoded bytes, raw RGB"""
    with open(os.path.join(IMAGES, "rocket_portrait.jpg"), "rb") as f:
        jpg = f.read()
    h, w = 19, 27
    rgb = bytes((x * 5 + y * 11 + c * 70) % 256 for y in range(h) for x in range(w) for c in range(3))
    return [(os.path.join(IMAGES, "chelsea_tiny.png"), QUERIES[0], {}),
            (jpg, QUERIES[1], {}),
            (rgb, QUERIES[2], {"height": h, "width": w})]


def key(r):
    return (r.answer, tuple(r.tokens), tuple(r.masks))


def run_threads(n, fn):
    errors, threads = [], []

    def body(t):
        try:
            fn(t)
        except Exception as e:  # reported by the main thread
            errors.append(f"thread {t}: {e!r}")

    for t in range(n):
        threads.append(threading.Thread(target=body, args=(t,)))
        threads[-1].start()
    for th in threads:
        th.join()
    return errors


def test_segment_from_threads():
    with load() as model:
        items = inputs()
        ref = [key(model.segment(img, q, max_new_tokens=5, **kw)) for img, q, kw in items]
        got = {}

        def work(t):
            for k in range(len(items)):
                i = (k + t) % len(items)  # each thread in its own order
                img, q, kw = items[i]
                got[(t, i)] = key(model.segment(img, q, max_new_tokens=5, **kw))

        errors = run_threads(4, work)
        assert not errors, errors
        for (t, i), v in got.items():
            assert v == ref[i], f"thread {t}, input {i}: differs from the single-threaded answer"
        assert len(got) == 4 * len(items)


def test_encoded_bytes_from_threads_wait_instead_of_busy():
    """the private engine of segment(bytes): created once under a lock; more callers than it
    batches wait for their turn"""
    with load() as model:
        with open(os.path.join(IMAGES, "chelsea_tiny.png"), "rb") as f:
            png = f.read()
        ref = key(model.segment(os.path.join(IMAGES, "chelsea_tiny.png"), QUERIES[0], max_new_tokens=4))
        results = []
        errors = run_threads(6, lambda t: results.append(key(model.segment(png, QUERIES[0], max_new_tokens=4))))
        assert not errors, errors
        assert results == [ref] * 6


def test_two_engines_one_model():
    with load() as model:
        items = inputs()
        ref = [key(model.segment(img, q, max_new_tokens=5, **kw)) for img, q, kw in items]
        got = {}

        def work(t):
            with lisa.Engine(model, max_batch=2, workers=1) as eng:
                for rnd in range(2):
                    ids = [(i, eng.submit(img, q, max_new_tokens=5, **kw)) for i, (img, q, kw) in enumerate(items)]
                    for i, rid in ids:
                        got[(t, rnd, i)] = key(eng.wait(rid))
                        eng.stats()

        errors = run_threads(2, work)
        assert not errors, errors
        assert len(got) == 2 * 2 * len(items)
        for (t, rnd, i), v in got.items():
            assert v == ref[i], f"engine {t}, round {rnd}, input {i}: differs from the single-threaded answer"


def test_close_while_in_use():
    """close() waits for the calls in progress; later calls raise ValueError, never crash"""
    model = load()
    eng = lisa.Engine(model, max_batch=1, workers=1)
    path = os.path.join(IMAGES, "chelsea_tiny.png")
    started = threading.Event()
    outcome = []

    def caller(t):
        started.set()
        try:
            for _ in range(3):
                if t == 0:
                    outcome.append(model.segment(path, QUERIES[0], max_new_tokens=3).answer)
                else:
                    outcome.append(eng.wait(eng.submit(path, QUERIES[0], max_new_tokens=3)).answer)
        except ValueError as e:
            outcome.append(str(e))

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    started.wait()
    model.close()  # closes eng too
    for th in threads:
        th.join()
    assert outcome and all(o.startswith("Sure, [SEG]") or o.endswith("is closed") for o in outcome), outcome
    assert model.closed
    try:
        model.segment(path, QUERIES[0])
        raise AssertionError("segment on a closed model")
    except ValueError:
        pass
