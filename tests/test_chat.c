/* tests/test_chat.c — `lisa chat` (issue #17) through a stdin script: queries and image paths per
 * turn (an empty path asks about the previous image again), answers printed, masks and overlays
 * saved per turn, a missing image is a notice and the conversation goes on, end of input ends it;
 * a repeated image is reused (not encoded again) and its masks equal `lisa segment`'s bit for bit;
 * --image-cache-mib 0 encodes every turn; usage errors. */
#include "golden.h"
#include "loader/image.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct run_out {
    int rc;
    char *out, *err;
} run_out;

/* `lisa ARGS < script` in dir (stdout, stderr kept) */
static run_out run(const char *dir, const char *script, const char *args) {
    char in[512], o[512], e[512], cmd[4096];
    snprintf(in, sizeof in, "%s/stdin.txt", dir);
    snprintf(o, sizeof o, "%s/stdout.txt", dir);
    snprintf(e, sizeof e, "%s/stderr.txt", dir);
    FILE *f = fopen(in, "w");
    cr_assert(f);
    fputs(script, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 '%s' %s < '%s' > '%s' 2> '%s'", LISA_TOOL_PATH, args, in, o, e);
    const int rc = system(cmd);
    run_out r = {.rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1};
    size_t n;
    r.out = tu_read_file(o, &n);
    r.err = tu_read_file(e, &n);
    cr_assert(r.out && r.err);
    return r;
}

static void run_free(run_out *r) {
    free(r->out);
    free(r->err);
}

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void same_png(const char *a, const char *b) {
    lisa_bitmap x, y;
    cr_assert_eq(lisa_image_load(&x, a, NULL), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_image_load(&y, b, NULL), LISA_OK, "%s", lisa_last_error());
    cr_assert(x.h == y.h && x.w == y.w);
    cr_expect(memcmp(x.data, y.data, (size_t)x.h * x.w * 3) == 0, "%s and %s differ", a, b);
    lisa_bitmap_free(&x);
    lisa_bitmap_free(&y);
}

#define MODEL_ARGS "--model " TINY_LISA_DIR " --vision-tower " TINY_CLIP_DIR " --backend cpu --threads 2"

Test(chat, conversation_reuses_the_image, .timeout = 600) {
    char dir[] = "/tmp/lisa_chat_XXXXXX";
    cr_assert(mkdtemp(dir));
    char script[2048], args[1024];
    snprintf(script, sizeof script,
             "What is the cat in this image? Please output segmentation mask.\n%s/chelsea.png\n"
             "Segment the cat.\n\n"                 /* the same image */
             "what is this\n%s/no-such-image.png\n" /* a notice, then the next turn */
             "the cup\n  %s/coffee.png  \n"         /* a new image (spaces trimmed) */
             "Segment the cat.\n%s/chelsea.png\n",  /* the first image again, as a new path */
             IMAGES_DIR, IMAGES_DIR, IMAGES_DIR, IMAGES_DIR);
    snprintf(args, sizeof args, "chat " MODEL_ARGS " --out-dir %s/vis --max-new-tokens 8", dir);
    run_out r = run(dir, script, args);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_expect_eq(count(r.out, "Please input your prompt: "), 6, "five turns and the prompt Ctrl-D answers");
    cr_expect_eq(count(r.out, "Please input the image path: "), 5);
    cr_expect_eq(count(r.out, "answer: Sure, [SEG] ."), 4, "%s", r.out);
    cr_expect_eq(count(r.out, "image encoded]"), 2, "chelsea and coffee encoded once each: %s", r.out);
    cr_expect_eq(count(r.out, "image reused]"), 2, "%s", r.out);
    cr_expect(strstr(r.err, "File not found in ") && strstr(r.err, "no-such-image.png"), "%s", r.err);
    cr_expect(strstr(r.err, "4 queries on 3 images (2 encoded, the rest reused), 8 files written"), "%s", r.err);
    char p[1024];
    const char *names[] = {"chelsea_q0_mask_0.png",       "chelsea_q0_masked_img_0.png", "chelsea_q1_mask_0.png",
                           "chelsea_q1_masked_img_0.png", "coffee_q2_mask_0.png",        "chelsea_q3_masked_img_0.png"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/vis/%s", dir, names[i]);
        cr_expect_eq(access(p, F_OK), 0, "%s missing; stdout: %s", p, r.out);
        cr_expect(strstr(r.out, p) != NULL, "'%s has been saved.' expected", p);
    }
    run_free(&r);

    /* the reused turn's mask and overlay = lisa segment's (a fresh engine, nothing reused) */
    snprintf(args, sizeof args,
             "segment " MODEL_ARGS " --image %s/chelsea.png --query 'Segment the cat.' --max-new-tokens 8 "
             "--out %s/seg_mask.png --overlay %s/seg_overlay.png",
             IMAGES_DIR, dir, dir);
    r = run(dir, "", args);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    run_free(&r);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/vis/chelsea_q1_mask_0.png", dir);
    snprintf(b, sizeof b, "%s/seg_mask.png", dir);
    same_png(a, b);
    snprintf(a, sizeof a, "%s/vis/chelsea_q3_masked_img_0.png", dir);
    snprintf(b, sizeof b, "%s/seg_overlay.png", dir);
    same_png(a, b);

    /* without the image cache every turn encodes */
    snprintf(args, sizeof args, "chat " MODEL_ARGS " --out-dir %s/vis0 --max-new-tokens 8 --image-cache-mib 0", dir);
    snprintf(script, sizeof script, "cat\n%s/chelsea_tiny.png\nthe cat\n\n", IMAGES_DIR);
    r = run(dir, script, args);
    cr_assert_eq(r.rc, 0, "stderr: %s", r.err);
    cr_expect_eq(count(r.out, "image encoded]"), 2, "%s", r.out);
    cr_expect_eq(count(r.out, "image reused]"), 0, "%s", r.out);
    run_free(&r);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(chat, first_turn_needs_an_image_and_usage_errors, .timeout = 300) {
    char dir[] = "/tmp/lisa_chat_XXXXXX";
    cr_assert(mkdtemp(dir));
    char args[1024];
    snprintf(args, sizeof args, "chat " MODEL_ARGS " --out-dir %s/vis", dir);
    run_out r = run(dir, "cat\n\n", args); /* an empty path with no image before */
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.err, "no image yet"), "%s", r.err);
    cr_expect_eq(count(r.out, "answer:"), 0);
    run_free(&r);
    r = run(dir, "", "chat --out-dir /tmp");
    cr_expect_eq(r.rc, 2);
    cr_expect(strstr(r.err, "--model is required"), "%s", r.err);
    run_free(&r);
    r = run(dir, "", "chat " MODEL_ARGS " --image-cache-mib -1");
    cr_expect_eq(r.rc, 2);
    cr_expect(strstr(r.err, "--image-cache-mib"), "%s", r.err);
    run_free(&r);
    r = run(dir, "", "chat --help");
    cr_expect_eq(r.rc, 0);
    cr_expect(strstr(r.out, "Ctrl-D"), "%s", r.out);
    run_free(&r);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}
