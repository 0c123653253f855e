"""A thin ctypes binding over liblisa.so (the C API of include/lisa.h): no compiled extension, no
numpy. Results are plain Python values: str, int, float, bytes, lists and dicts.

    import lisa
    model = lisa.Model("LISA-7B-v1", vision_tower="clip-vit-large-patch14")
    r = model.segment("photo.jpg", "What would keep me dry? Please output segmentation mask.")
    print(r.answer)                 # "Sure, [SEG] ."
    m = r.masks[0]                  # Mask(height, width, data=bytes of 0/1, row-major, score)
    r.json["masks"][0]["rle"]       # COCO RLE {"size": [h, w], "counts": "..."} (pycocotools' form)
    model.info()["llm_layers"], model.count_tokens("a query")   # dims, backend, memory; token counts

    with lisa.Engine(model, max_batch=8) as engine:   # continuous batching, thread-safe submit
        ids = [engine.submit(open(p, "rb").read(), q) for p, q in jobs]
        results = [engine.wait(i) for i in ids]

        img = lisa.Image("photo.jpg")                   # decoded once; encoded once by the engine
        ids = [engine.submit(img, q) for q in ("the cat", "its left ear", "the sofa")]

The library is found as $LISA_LIBRARY (a path), else as "lisa" on the system library path
(ctypes.util.find_library; e.g. after `cmake --install`), else liblisa.so.0 / liblisa.so.
Every failure raises lisa.Error with the library's status name and message.

Threads: a Model and an Engine may be used from any number of threads at once (the library
releases the GIL while it computes; include/lisa.h "Threads"). close() waits for the calls in
progress on that object to return, then frees it; calls after close() raise ValueError.
"""

import ctypes
import ctypes.util
import json
import os
import threading
import weakref
from collections import namedtuple

__all__ = ["Error", "Model", "Engine", "Image", "Result", "Mask", "version"]

_c = ctypes
_i32, _i64, _u32, _u64, _u8 = _c.c_int32, _c.c_int64, _c.c_uint32, _c.c_uint64, _c.c_uint8


def _load():
    path = os.environ.get("LISA_LIBRARY")
    candidates = [path] if path else []
    found = ctypes.util.find_library("lisa")
    if found:
        candidates.append(found)
    candidates += ["liblisa.so.0", "liblisa.so"]
    errors = []
    for cand in candidates:
        try:
            return _c.CDLL(cand)
        except OSError as e:
            errors.append(f"{cand}: {e}")
    raise ImportError("cannot load liblisa (set LISA_LIBRARY to the path of liblisa.so): " + "; ".join(errors))


_lib = _load()


# ---- the structs of lisa.h, field for field ----------------------------------------------------

class _ModelParams(_c.Structure):
    _fields_ = [("vision_tower", _c.c_char_p), ("backend", _c.c_int), ("device", _i32), ("n_threads", _i32),
                ("tensor_parallel", _i32)]


class _SegmentParams(_c.Structure):
    _fields_ = [("max_new_tokens", _i32), ("max_query_bytes", _i32), ("max_image_pixels", _i64),
                ("keep_logits", _c.c_bool)]


class _Timings(_c.Structure):
    _fields_ = [(n, _c.c_double) for n in ("preprocess_ms", "clip_ms", "prefill_ms", "decode_ms", "sam_encoder_ms",
                                          "sam_decoder_ms", "postprocess_ms", "total_ms")] + \
               [("n_prompt_tokens", _i32), ("n_generated", _i32), ("n_reused_tokens", _i32)]


class _EngineParams(_c.Structure):
    _fields_ = [("max_batch", _i32), ("max_prefill_tokens", _i32), ("max_images", _i32), ("page_size", _i32),
                ("kv_cache_bytes", _i64), ("max_queue", _i32), ("n_workers", _i32), ("share_prefix", _c.c_bool),
                ("background", _c.c_bool), ("image_cache_bytes", _i64)]


class _Request(_c.Structure):
    _fields_ = [("image_data", _c.c_void_p), ("image_size", _c.c_size_t), ("image_path", _c.c_char_p),
                ("rgb", _c.POINTER(_u8)), ("height", _i32), ("width", _i32), ("query", _c.c_char_p),
                ("params", _SegmentParams), ("user_data", _u64), ("image", _c.c_void_p)]


class _ModelInfo(_c.Structure):
    _fields_ = [("size", _u32)] + \
               [(n, _i32) for n in ("llm_hidden", "llm_layers", "llm_heads", "llm_kv_heads", "llm_head_dim",
                                    "llm_intermediate", "vocab_size", "max_position", "clip_hidden", "clip_layers",
                                    "clip_heads", "clip_image_size", "clip_patch_size", "clip_layers_run", "n_patches",
                                    "sam_image_size", "sam_embed_dim", "sam_depth", "sam_heads", "sam_prompt_dim",
                                    "seg_token_id")] + \
               [("backend", _c.c_int), ("backend_name", _c.c_char * 16), ("device_name", _c.c_char * 128),
                ("device", _i32), ("n_threads", _i32), ("activation_dtype", _c.c_char * 8)] + \
               [(n, _i64) for n in ("weight_bytes", "checkpoint_bytes", "scratch_bytes", "device_memory_bytes")] + \
               [(n, _i32) for n in ("tp_rank", "tp_size", "tp_group", "tp_groups", "fused_ops", "fused_ops_native")]


_BATCH_BUCKETS = 9  # LISA_ENGINE_BATCH_BUCKETS


class _EngineStats(_c.Structure):
    _fields_ = [("queued", _i32), ("ready", _i32), ("running", _i32), ("results", _i32), ("kv_pages_used", _i32),
                ("kv_pages_total", _i32), ("kv_prefix_pages", _i32), ("completed", _i64), ("failed", _i64),
                ("steps", _i64), ("last_batch", _i32), ("decode_steps", _i64), ("decode_rows", _i64),
                ("decode_batch_hist", _i64 * _BATCH_BUCKETS), ("image_cache_hits", _i64),
                ("image_cache_misses", _i64), ("image_cache_evictions", _i64), ("image_cache_bytes", _i64),
                ("image_cache_capacity", _i64), ("image_cache_entries", _i32), ("kv_prefix_nodes", _i32),
                ("kv_prefix_hits", _i64), ("kv_reused_tokens", _i64), ("kv_prefix_evictions", _i64)]


# every struct of lisa.h this binding mirrors, by its C name (python/tests/test_abi.py compares
# their sizes and offsets with the C compiler's)
_STRUCTS = {"lisa_model_params": _ModelParams, "lisa_segment_params": _SegmentParams, "lisa_timings": _Timings,
            "lisa_engine_params": _EngineParams, "lisa_request": _Request, "lisa_engine_stats": _EngineStats,
            "lisa_model_info": _ModelInfo}

_P = _c.c_void_p
_PP = _c.POINTER(_c.c_void_p)


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_status_name = _fn("lisa_status_name", _c.c_char_p, _c.c_int)
_last_error = _fn("lisa_last_error", _c.c_char_p)
_version = _fn("lisa_version", _c.c_char_p)
_model_default_params = _fn("lisa_model_default_params", _ModelParams)
_model_load = _fn("lisa_model_load", _c.c_int, _c.c_char_p, _c.POINTER(_ModelParams), _PP)
_model_free = _fn("lisa_model_free", None, _P)
_model_seg_token_id = _fn("lisa_model_seg_token_id", _i32, _P)
_model_get_info = _fn("lisa_model_get_info", _c.c_int, _P, _c.POINTER(_ModelInfo))
_model_count_tokens = _fn("lisa_model_count_tokens", _c.c_int, _P, _c.c_char_p, _c.c_size_t, _c.c_bool,
                          _c.POINTER(_i32))
_model_prompt_tokens = _fn("lisa_model_prompt_tokens", _c.c_int, _P, _c.c_char_p, _c.POINTER(_i32))
_segment_default_params = _fn("lisa_segment_default_params", _SegmentParams)
_segment = _fn("lisa_segment", _c.c_int, _P, _c.POINTER(_u8), _i32, _i32, _c.c_char_p, _c.POINTER(_SegmentParams), _PP)
_segment_file = _fn("lisa_segment_file", _c.c_int, _P, _c.c_char_p, _c.c_char_p, _c.POINTER(_SegmentParams), _PP)
_r_answer = _fn("lisa_result_answer", _c.c_char_p, _P)
_r_text_output = _fn("lisa_result_text_output", _c.c_char_p, _P)
_r_n_tokens = _fn("lisa_result_n_tokens", _i32, _P)
_r_tokens = _fn("lisa_result_tokens", _c.POINTER(_i32), _P)
_r_n_masks = _fn("lisa_result_n_masks", _i32, _P)
_r_mask = _fn("lisa_result_mask", _c.POINTER(_u8), _P, _i32, _c.POINTER(_i32), _c.POINTER(_i32))
_r_mask_score = _fn("lisa_result_mask_score", _c.c_float, _P, _i32)
_r_timings = _fn("lisa_result_timings", _Timings, _P)
_r_status = _fn("lisa_result_status", _c.c_int, _P)
_r_error = _fn("lisa_result_error", _c.c_char_p, _P)
_r_id = _fn("lisa_result_id", _u64, _P)
_r_user_data = _fn("lisa_result_user_data", _u64, _P)
_r_free = _fn("lisa_result_free", None, _P)
_r_to_json = _fn("lisa_result_to_json", _c.c_int, _P, _u32, _PP)
_free = _fn("lisa_free", None, _P)
_engine_default_params = _fn("lisa_engine_default_params", _EngineParams)
_engine_create = _fn("lisa_engine_create", _c.c_int, _P, _c.POINTER(_EngineParams), _PP)
_engine_free = _fn("lisa_engine_free", None, _P)
_request_default = _fn("lisa_request_default", _Request)
_engine_submit = _fn("lisa_engine_submit", _c.c_int, _P, _c.POINTER(_Request), _c.POINTER(_u64))
_engine_poll = _fn("lisa_engine_poll", _c.c_int, _P, _PP)
_engine_wait_timeout = _fn("lisa_engine_wait_timeout", _c.c_int, _P, _u64, _i64, _PP)
_engine_get_stats = _fn("lisa_engine_get_stats", _EngineStats, _P)
_image_create_file = _fn("lisa_image_create_file", _c.c_int, _c.c_char_p, _PP)
_image_create_bytes = _fn("lisa_image_create_bytes", _c.c_int, _c.c_void_p, _c.c_size_t, _PP)
_image_create_rgb = _fn("lisa_image_create_rgb", _c.c_int, _c.POINTER(_u8), _i32, _i32, _PP)
_image_height = _fn("lisa_image_height", _i32, _P)
_image_width = _fn("lisa_image_width", _i32, _P)
_image_free = _fn("lisa_image_free", None, _P)

_JSON_TOKENS, _JSON_TEXT_OUTPUT, _JSON_MASK_PNG, _JSON_TIMINGS = 1, 2, 4, 8
_OK, _ERR_NOT_FOUND, _ERR_BUSY = 0, 8, 10
_BACKENDS = {"auto": 0, "cpu": 1, "cuda": 2}


class Error(Exception):
    """A failed library call: .status is the lisa_status name ("LISA_ERR_FORMAT"), .code its value."""

    def __init__(self, code, message):
        self.code = code
        self.status = _status_name(code).decode()
        super().__init__(f"{self.status}: {message}")


def _check(code):
    if code != _OK:
        raise Error(code, _last_error().decode("utf-8", "replace"))


def version():
    """The library version ("0.1.0")."""
    return _version().decode()


Mask = namedtuple("Mask", "height width data score")
Mask.__doc__ = "One [SEG]'s mask: data is height*width bytes, 0 or 1, row-major; score is SAM's IoU prediction."


class Result:
    """The outcome of one request, copied out of the library: answer (str), text_output (chat.py's
    printed string), tokens (list of ids), masks (list of Mask), timings (dict), id, user_data, and
    json: the dict of lisa_result_to_json (masks as COCO RLE with bbox and area; "png" per mask when
    asked for)."""

    def __init__(self, handle, png=False):
        try:
            code = _r_status(handle)
            if code != _OK:
                raise Error(code, _r_error(handle).decode("utf-8", "replace"))
            self.id = _r_id(handle)
            self.user_data = _r_user_data(handle)
            self.answer = (_r_answer(handle) or b"").decode("utf-8", "replace")
            self.text_output = (_r_text_output(handle) or b"").decode("utf-8", "replace")
            n = _r_n_tokens(handle)
            self.tokens = _r_tokens(handle)[:n] if n else []
            self.masks = []
            for i in range(_r_n_masks(handle)):
                h, w = _i32(), _i32()
                p = _r_mask(handle, i, _c.byref(h), _c.byref(w))
                self.masks.append(Mask(h.value, w.value, _c.string_at(p, h.value * w.value),
                                       float(_r_mask_score(handle, i))))
            t = _r_timings(handle)
            self.timings = {name: getattr(t, name) for name, _ in _Timings._fields_}
            text = _c.c_void_p()
            flags = _JSON_TOKENS | _JSON_TEXT_OUTPUT | _JSON_TIMINGS | (_JSON_MASK_PNG if png else 0)
            _check(_r_to_json(handle, flags, _c.byref(text)))
            try:
                self.json = json.loads(_c.string_at(text).decode("utf-8"))
            finally:
                _free(text)
        finally:
            _r_free(handle)

    def __repr__(self):
        return f"<lisa.Result id={self.id} answer={self.answer!r} masks={len(self.masks)}>"


class _Handle:
    """A library handle shared by threads: calls hold it (use()); close() stops new calls, waits for
    the ones in progress, then frees it once."""

    def __init__(self, h, free):
        self.h = h
        self._free = free
        self._busy = 0
        self._closed = False
        self._cv = threading.Condition()

    def use(self, what):
        return _Use(self, what)

    def close(self, before_free=None):
        """Stops new calls, waits for those in progress, runs before_free(), frees (once)."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            while self._busy:
                self._cv.wait()
        if before_free:
            before_free()
        self._free(self.h)
        self.h = None

    @property
    def closed(self):
        return self._closed


class _Use:
    def __init__(self, handle, what):
        self._handle = handle
        self._what = what

    def __enter__(self):
        hd = self._handle
        with hd._cv:
            if hd._closed:
                raise ValueError(f"the {self._what} is closed")
            hd._busy += 1
        return hd.h

    def __exit__(self, *exc):
        hd = self._handle
        with hd._cv:
            hd._busy -= 1
            if not hd._busy:
                hd._cv.notify_all()


def _segment_params(max_new_tokens=None, max_query_bytes=None, max_image_pixels=None):
    p = _segment_default_params()
    if max_new_tokens is not None:
        p.max_new_tokens = max_new_tokens
    if max_query_bytes is not None:
        p.max_query_bytes = max_query_bytes
    if max_image_pixels is not None:
        p.max_image_pixels = max_image_pixels
    return p


def _rgb_buffer(rgb, height, width):
    if len(rgb) != height * width * 3:
        raise ValueError(f"rgb holds {len(rgb)} bytes, not height*width*3 = {height * width * 3}")
    return (_u8 * len(rgb)).from_buffer_copy(rgb)


class Image:
    """An image decoded once (lisa_image): a path (str or os.PathLike), encoded PNG/JPEG bytes, or raw
    RGB bytes with height= and width=. Submit it with any number of queries (Engine.submit,
    Model.segment): the engine encodes it once and reuses its embeddings and its prompt prefix for
    every query while it stays in the engine's image cache. Requests keep their own reference, so
    closing the Image after submitting is fine."""

    def __init__(self, source, *, height=None, width=None):
        self._h = _c.c_void_p()
        if isinstance(source, (str, os.PathLike)):
            _check(_image_create_file(os.fsencode(source), _c.byref(self._h)))
        elif height is not None or width is not None:
            _check(_image_create_rgb(_rgb_buffer(source, height, width), height, width, _c.byref(self._h)))
        else:
            buf = (_c.c_char * len(source)).from_buffer_copy(source)
            _check(_image_create_bytes(_c.cast(buf, _c.c_void_p), len(source), _c.byref(self._h)))

    @property
    def height(self):
        return _image_height(self._h)

    @property
    def width(self):
        return _image_width(self._h)

    def close(self):
        if self._h:
            _image_free(self._h)
            self._h = _c.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Model:
    """A loaded LISA checkpoint directory (lisa_model_load). backend: "auto", "cpu" or "cuda".
    Thread-safe: any number of threads may call segment() and run Engines on one Model at once."""

    _SLOT_QUEUE = 64  # requests of segment(bytes) in flight in the private engine; more threads wait

    def __init__(self, path, vision_tower=None, backend="auto", device=0, threads=0):
        self._hd = None
        p = _model_default_params()
        p.vision_tower = os.fsencode(vision_tower) if vision_tower else None
        p.backend = _BACKENDS[backend]
        p.device = device
        p.n_threads = threads
        h = _c.c_void_p()
        _check(_model_load(os.fsencode(path), _c.byref(p), _c.byref(h)))
        self._hd = _Handle(h, _model_free)
        self._engine = None
        self._engine_lock = threading.Lock()  # creates the private engine once
        self._slots = threading.BoundedSemaphore(self._SLOT_QUEUE)
        self._engines = weakref.WeakSet()  # engines borrow the model: closed before it

    @property
    def seg_token_id(self):
        with self._hd.use("model") as h:
            return _model_seg_token_id(h)

    def info(self):
        """What the model is (lisa_model_get_info): the dims of its LLM, CLIP and SAM, the backend and
        device it runs on ("backend", "device_name"), the activation dtype, memory in bytes
        (weight_bytes, checkpoint_bytes, scratch_bytes, device_memory_bytes) and its TP rank/size, as
        a dict."""
        i = _ModelInfo()
        i.size = _c.sizeof(_ModelInfo)
        with self._hd.use("model") as h:
            _check(_model_get_info(h, _c.byref(i)))
        d = {}
        for name, _ in _ModelInfo._fields_:
            v = getattr(i, name)
            d[name] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        d["backend"] = {v: k for k, v in _BACKENDS.items()}.get(i.backend, str(i.backend))
        del d["backend_name"], d["size"]
        return d

    def count_tokens(self, text, add_bos=False):
        """Token ids the checkpoint's tokenizer gives text (str or UTF-8 bytes), plus BOS if add_bos."""
        b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        n = _i32()
        with self._hd.use("model") as h:
            _check(_model_count_tokens(h, b, len(b), add_bos, _c.byref(n)))
        return n.value

    def prompt_tokens(self, query):
        """The positions a request with this query prefills: system prompt, image patches, query
        (Result.timings["n_prompt_tokens"]). Raises Error for a query the engine would refuse."""
        n = _i32()
        with self._hd.use("model") as h:
            _check(_model_prompt_tokens(h, query.encode("utf-8"), _c.byref(n)))
        return n.value

    def segment(self, image, query, *, height=None, width=None, png=False, **params):
        """One request, chat.py semantics. image: a path (str or os.PathLike), encoded PNG/JPEG bytes,
        raw RGB bytes with height= and width= ([height, width, 3], row-major), or an Image. params:
        max_new_tokens, max_query_bytes, max_image_pixels. png=True adds each mask's PNG (base64) to
        Result.json. Encoded bytes and Images go through an engine kept by the model, whose image
        cache makes further queries on the same picture cheap. Thread-safe; concurrent calls run at
        once."""
        sp = _segment_params(**params)
        q = query.encode("utf-8")
        out = _c.c_void_p()
        with self._hd.use("model") as h:
            if isinstance(image, (str, os.PathLike)):
                _check(_segment_file(h, os.fsencode(image), q, _c.byref(sp), _c.byref(out)))
                return Result(out, png)
            if height is not None or width is not None:
                buf = _rgb_buffer(image, height, width)
                _check(_segment(h, buf, height, width, q, _c.byref(sp), _c.byref(out)))
                return Result(out, png)
            # encoded bytes or an Image: through a private engine, created once and kept for the next calls;
            # callers beyond its queue wait for a slot instead of getting LISA_ERR_BUSY
            with self._engine_lock:
                if self._engine is None:
                    self._engine = Engine(self, max_batch=4, max_queue=self._SLOT_QUEUE)
                eng = self._engine
            with self._slots:
                return eng.wait(eng.submit(image, query, **params), png=png)

    def _close_engines(self):
        for e in list(self._engines):
            e.close()
        self._engine = None

    def close(self):
        """Frees the model: waits for the calls in progress, closes the engines over it (each waits
        for its own calls), then frees it."""
        if self._hd is not None:
            self._hd.close(before_free=self._close_engines)

    @property
    def closed(self):
        return self._hd is None or self._hd.closed

    @property
    def _h(self):
        """The raw lisa_model handle (for calls the binding does not wrap); NULL once closed. A caller
        using it must not overlap close()."""
        return self._hd.h if self._hd is not None and not self._hd.closed else _c.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Engine:
    """The continuous-batching engine over a model (lisa_engine_create, background mode). Every
    method is thread-safe; results come back by id (wait) or in completion order (poll / wait())."""

    def __init__(self, model, *, max_batch=None, max_queue=None, max_images=None, kv_cache_bytes=None,
                 max_prefill_tokens=None, workers=None, share_prefix=None, image_cache_bytes=None):
        self._hd = None
        p = _engine_default_params()
        for name, value in (("max_batch", max_batch), ("max_queue", max_queue), ("max_images", max_images),
                            ("kv_cache_bytes", kv_cache_bytes), ("max_prefill_tokens", max_prefill_tokens),
                            ("n_workers", workers), ("share_prefix", share_prefix),
                            ("image_cache_bytes", image_cache_bytes)):
            if value is not None:
                setattr(p, name, value)
        if p.max_images > p.max_batch:
            p.max_images = p.max_batch
        p.background = True
        self._model = model  # the engine borrows the model: keep it alive
        h = _c.c_void_p()
        # registered while the model is held, so that Model.close (which waits for that) sees it
        with model._hd.use("model") as mh:
            _check(_engine_create(mh, _c.byref(p), _c.byref(h)))
            self._hd = _Handle(h, _engine_free)
            model._engines.add(self)

    def submit(self, image, query, *, height=None, width=None, user_data=0, **params):
        """Queues a request (inputs are copied, an Image referenced) and returns its id. image as in
        Model.segment. Raises Error LISA_ERR_BUSY when max_queue requests are unfinished."""
        r = _request_default()
        r.params = _segment_params(**params)
        r.query = query.encode("utf-8")
        r.user_data = user_data
        keep = None
        if isinstance(image, Image):
            if not image._h:
                raise ValueError("the image is closed")
            r.image = image._h
        elif isinstance(image, (str, os.PathLike)):
            r.image_path = os.fsencode(image)
        elif height is not None or width is not None:
            keep = _rgb_buffer(image, height, width)
            r.rgb, r.height, r.width = keep, height, width
        else:
            keep = (_c.c_char * len(image)).from_buffer_copy(image)
            r.image_data = _c.cast(keep, _c.c_void_p)
            r.image_size = len(image)
        rid = _u64()
        with self._hd.use("engine") as h:
            _check(_engine_submit(h, _c.byref(r), _c.byref(rid)))
        return rid.value

    def wait(self, request_id=0, timeout=None, png=False):
        """The result of request_id (0: the next one to finish). timeout in seconds (None: no limit);
        raises Error LISA_ERR_BUSY when it passes (the request keeps running). A failed request
        raises Error with its status."""
        out = _c.c_void_p()
        ms = -1 if timeout is None else int(timeout * 1000)
        with self._hd.use("engine") as h:
            _check(_engine_wait_timeout(h, request_id, ms, _c.byref(out)))
        return Result(out, png)

    def poll(self, png=False):
        """A finished result if one is ready, else None."""
        out = _c.c_void_p()
        with self._hd.use("engine") as h:
            code = _engine_poll(h, _c.byref(out))
        if code == _ERR_NOT_FOUND:
            return None
        _check(code)
        return Result(out, png)

    def stats(self):
        with self._hd.use("engine") as h:
            s = _engine_get_stats(h)
        d = {name: getattr(s, name) for name, _ in _EngineStats._fields_ if name != "decode_batch_hist"}
        d["decode_batch_hist"] = list(s.decode_batch_hist)
        return d

    def close(self):
        """Waits for the calls in progress on this engine (a wait() returns when its request
        finishes), then frees it; unclaimed results are dropped."""
        if self._hd is not None:
            self._hd.close()

    @property
    def _h(self):
        """The raw lisa_engine handle; NULL once closed (see Model._h)."""
        return self._hd.h if self._hd is not None and not self._hd.closed else _c.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
