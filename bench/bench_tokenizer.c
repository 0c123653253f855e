/* bench/bench_tokenizer.c — tokenizer throughput: encode, decode and streaming decode in MB/s of
 * UTF-8 text, on a multilingual paragraph repeated to several sizes (one long segment: the worst
 * case for BPE, which merges over the whole segment). MB/s that stays flat as the size grows
 * shows the O(n log n) merge loop (a rescanning BPE would fall off linearly).
 *
 * usage: bench_tokenizer [CHECKPOINT_DIR | tokenizer.model] [max_mib]
 *   default: tests/data/tokenizer/llama-spm.model (run from the repository root), max 4 MiB.
 * MB/s = bytes of text / seconds of thread CPU time (best of 3 runs; CPU time so that a busy
 * machine does not distort it); ns per token for the stream. */
#include "core/error.h"
#include "models/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char kParagraph[] =
    "Sure, the segmentation result is [SEG]. The quick brown fox jumps over the lazy dog; 42 foxes, 3.14 dogs.\n"
    "生活的真谛是在图像中分割出最大的物体，然后解释原因。東京は日本の首都です。한국어 문장도 있습니다.\n"
    "Привет, мир! Сегментируй собаку на фото. Ελληνικά γράμματα. مرحبا بالعالم، هذه جملة عربية.\n"
    "हिन्दी में लिखा हुआ वाक्य। ภาษาไทยไม่มีช่องว่างระหว่างคำ. Emoji: 😀👍🏽🐈 👨‍👩‍👧 "
    "🇩🇪.\n"
    "def segment(image, query):\n    return model.evaluate(image, query)  # <im_start><image><im_end>\n"
    "\t\tIndented   text   with    runs     of      spaces.   \n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: robust to a loaded machine */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "tests/data/tokenizer/llama-spm.model";
    const double max_mib = argc > 2 ? atof(argv[2]) : 4.0;
    struct stat st;
    lisa_tokenizer_params p = lisa_tokenizer_default_params();
    const char *dir = NULL;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        dir = path;
    else
        p.sp_model_path = path;
    lisa_tokenizer *tok = NULL;
    if (lisa_tokenizer_load_ex(&tok, dir, &p) != LISA_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", lisa_last_error());
        return 1;
    }
    printf("tokenizer: %s (vocab %d)\n", path, lisa_tokenizer_vocab_size(tok));
    printf("%10s %10s %12s %12s %12s %14s\n", "bytes", "tokens", "encode MB/s", "decode MB/s", "stream MB/s",
           "stream ns/tok");

    const size_t max_bytes = (size_t)(max_mib * 1048576.0);
    const size_t plen = sizeof kParagraph - 1;
    char *text = malloc(max_bytes + plen);
    size_t have = 0;
    while (have < max_bytes) {
        memcpy(text + have, kParagraph, plen);
        have += plen;
    }
    int32_t *ids = malloc(sizeof *ids * (max_bytes + plen + 16));
    char *out = malloc(max_bytes + plen + 64);
    const size_t chunk_cap = lisa_tokenizer_stream_chunk_max(tok) + 1;
    char *chunk = malloc(chunk_cap);

    for (size_t n = 16384; n <= max_bytes; n *= 4) {
        size_t bytes = n - n % plen; /* whole paragraphs: valid UTF-8 */
        if (bytes == 0) bytes = plen;
        int32_t n_ids = 0;
        double t_enc = 1e30, t_dec = 1e30, t_str = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now_s();
            if (lisa_tokenizer_encode(tok, text, bytes, true, ids, (int32_t)(max_bytes + plen + 16), &n_ids) !=
                LISA_OK) {
                fprintf(stderr, "encode: %s\n", lisa_last_error());
                return 1;
            }
            double t1 = now_s();
            size_t len = 0;
            if (lisa_tokenizer_decode(tok, ids, n_ids, true, out, max_bytes + plen + 64, &len) != LISA_OK) {
                fprintf(stderr, "decode: %s\n", lisa_last_error());
                return 1;
            }
            double t2 = now_s();
            lisa_tokenizer_stream s;
            lisa_tokenizer_stream_init(&s, tok, true);
            size_t total = 0, l;
            for (int32_t i = 0; i < n_ids; i++) {
                lisa_tokenizer_stream_push(&s, ids[i], chunk, chunk_cap, &l);
                total += l;
            }
            lisa_tokenizer_stream_finish(&s, chunk, chunk_cap, &l);
            double t3 = now_s();
            if (len != bytes || memcmp(out, text, bytes) != 0 || total + l != len) {
                fprintf(stderr, "round trip mismatch at %zu bytes\n", bytes);
                return 1;
            }
            if (t1 - t0 < t_enc) t_enc = t1 - t0;
            if (t2 - t1 < t_dec) t_dec = t2 - t1;
            if (t3 - t2 < t_str) t_str = t3 - t2;
        }
        printf("%10zu %10d %12.1f %12.1f %12.1f %14.1f\n", bytes, n_ids, bytes / t_enc / 1e6, bytes / t_dec / 1e6,
               bytes / t_str / 1e6, t_str / n_ids * 1e9);
    }

    /* typical request: the chat.py prompt for one query, tokenizer_image_token */
    char prompt[1024];
    size_t plen2;
    lisa_prompt_llava_v1(prompt, sizeof prompt, "Please segment the person on the left in this image.", true, &plen2);
    const int iters = 20000;
    int32_t n_ids = 0;
    double t0 = now_s();
    for (int i = 0; i < iters; i++)
        lisa_tokenizer_encode_image_prompt(tok, prompt, plen2, ids, 1024, &n_ids);
    double t1 = now_s();
    printf("llava_v1 prompt (%zu bytes, %d ids): %.2f us per tokenizer_image_token\n", plen2, n_ids,
           (t1 - t0) / iters * 1e6);

    free(chunk);
    free(out);
    free(ids);
    free(text);
    lisa_tokenizer_free(tok);
    return 0;
}
