/* tests/test_tokenizer_cli.c — `lisa tokenize`: JSON lines in, JSON lines out, errors as lines. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define TOKDIR LISA_TESTDATA_DIR "/tokenizer"

/* Runs the tool with `args`, feeding `input`; returns stdout (malloc'd) and the exit status. */
static char *run_tool(const char *args, const char *input, int *status) {
    char *dir = tu_make_tmpdir("lisa_tokcli");
    char in[1024], out[1024], cmd[4096];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    cr_assert(tu_write_file(in, input, strlen(input)));
    snprintf(cmd, sizeof cmd, "'%s' tokenize %s < '%s' > '%s' 2>/dev/null", LISA_TOOL_PATH, args, in, out);
    const int rc = system(cmd);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    size_t len;
    char *s = tu_read_file(out, &len);
    tu_remove_tree(dir);
    free(dir);
    return s ? s : strdup("");
}

static cJSON *line_json(char **cursor) {
    char *nl = strchr(*cursor, '\n');
    cr_assert(nl, "missing output line");
    *nl = '\0';
    cJSON *j = cJSON_Parse(*cursor);
    cr_assert(j, "not JSON: %s", *cursor);
    *cursor = nl + 1;
    return j;
}

static void expect_ids(const cJSON *j, const int32_t *want, int n) {
    const cJSON *ids = cJSON_GetObjectItem(j, "ids");
    cr_assert(cJSON_IsArray(ids), "no ids in %s", cJSON_PrintUnformatted(j));
    cr_assert_eq(cJSON_GetArraySize(ids), n);
    for (int i = 0; i < n; i++)
        cr_expect_eq((int32_t)cJSON_GetArrayItem(ids, i)->valuedouble, want[i]);
}

Test(tokenizer_cli, json_lines) {
    const char *input = "{\"text\": \"Sure, it is [SEG].\"}\n"
                        "{\"text\": \"[SEG]\", \"add_special_tokens\": false}\n"
                        "{\"prompt\": \"a<image>\\nb\", \"image\": true}\n"
                        "{\"ids\": [1, 18585, 29892, 32000, 29889, 2]}\n"
                        "{\"ids\": [1, 18585, 29892, 32000, 29889, 2], \"skip_special_tokens\": true}\n"
                        "{\"ids\": [13, 18585, 29871, 29871, 29892], \"chat_cleanup\": true}\n"
                        "not json\n"
                        "{\"ids\": [1, -200]}\n"
                        "{\"query\": \"What is this?\"}\n"
                        "{\"nothing\": 1}\n";
    int status;
    char args[2048];
    snprintf(args, sizeof args, "--model '%s/lisa13b' --sp-model '%s/llama-spm.model'", TOKDIR, TOKDIR);
    char *out = run_tool(args, input, &status);
    cr_expect_eq(status, 0);
    char *c = out;
    cJSON *j;

    j = line_json(&c);
    const int32_t a[] = {1, 18585, 29892, 372, 338, 32000, 869};
    expect_ids(j, a, 7);
    cr_expect_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tokens"), 1)->valuestring, "\xe2\x96\x81Sure");
    cJSON_Delete(j);

    j = line_json(&c);
    const int32_t b[] = {32000};
    expect_ids(j, b, 1);
    cJSON_Delete(j);

    j = line_json(&c); /* "a<image>\nb": [1, ▁a, -200, ▁, <0x0A>, b] */
    const int32_t p[] = {1, 263, -200, 29871, 13, 29890};
    expect_ids(j, p, 6);
    cr_expect_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tokens"), 2)->valuestring, "<image>");
    cJSON_Delete(j);

    j = line_json(&c);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "text")->valuestring, "<s>Sure, [SEG]  .</s>");
    cJSON_Delete(j);
    j = line_json(&c);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "text")->valuestring, "Sure, [SEG] .");
    cJSON_Delete(j);
    j = line_json(&c); /* "\n Sure  ," (bytes first: no leading-space strip) -> " Sure ," */
    cr_expect_str_eq(cJSON_GetObjectItem(j, "text")->valuestring, " Sure ,");
    cJSON_Delete(j);

    for (int k = 0; k < 2; k++) {
        j = line_json(&c);
        cr_expect(cJSON_IsString(cJSON_GetObjectItem(j, "error")), "error line %d", k);
        cJSON_Delete(j);
    }
    j = line_json(&c);
    cr_expect(strstr(cJSON_GetObjectItem(j, "prompt")->valuestring, "USER: <im_start><image><im_end>\nWhat is") !=
              NULL);
    const cJSON *ids = cJSON_GetObjectItem(j, "ids");
    bool has_image = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, ids) has_image |= it->valuedouble == -200;
    cr_expect(has_image);
    cJSON_Delete(j);
    j = line_json(&c);
    cr_expect(cJSON_IsString(cJSON_GetObjectItem(j, "error")));
    cJSON_Delete(j);
    cr_expect_str_eq(c, "");
    free(out);
}

Test(tokenizer_cli, usage_and_load_errors) {
    int status;
    char *out = run_tool("", "", &status);
    cr_expect_eq(status, 2);
    free(out);
    out = run_tool("--model /nonexistent-dir", "", &status);
    cr_expect_eq(status, 1);
    free(out);
    out = run_tool("--help", "", &status);
    cr_expect_eq(status, 0);
    cr_expect(strstr(out, "usage: lisa tokenize") != NULL);
    free(out);
}
