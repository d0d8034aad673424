// tests/test_runconfig.c - train/runconfig: defaults, file + override precedence, HF config
// pass-through, every class of bad value refused with the file and key named, and the
// resolved config round-tripping through JSON.
#include <unistd.h>

#include "../core/fileio.h"
#include "../train/runconfig.h"
#include "test_util.h"

static et_status parse(const char *json, int n, const char *const *ov, et_run_config *c) {
    return et_run_config_parse(json, "cfg.json", n, ov, c);
}

// The parse must fail with a message containing every fragment.
static void expect_err(const char *json, const char *ov, const char *frag1, const char *frag2) {
    et_run_config c;
    const char *ovs[1] = {ov};
    et_status st = parse(json, ov ? 1 : 0, ovs, &c);
    CHECK(st != NULL, "accepted %s / %s", json, ov ? ov : "-");
    if (!st) {
        et_run_config_free(&c);
        return;
    }
    CHECK(strstr(et_status_msg(st), frag1) && (!frag2 || strstr(et_status_msg(st), frag2)),
          "for %s / %s: got \"%s\", wanted \"%s\" and \"%s\"", json, ov ? ov : "-",
          et_status_msg(st), frag1, frag2 ? frag2 : "");
    et_status_free(st);
}

static void test_defaults(void) {
    et_run_config c;
    et_run_config_default(&c);
    CHECK(c.lr == 1e-4 && c.lora_r == 16 && c.lora_alpha == 32 && c.lora_dropout == 0.05);
    CHECK(!strcmp(c.template_name, "vicuna_v1") && !strcmp(c.projector, "mlp2x_gelu"));
    CHECK(c.select_layer == -2 && c.max_len == 2048 && c.lora_n_targets == 7);
    CHECK(!strcmp(c.lora_targets[6], "down_proj") && c.llm_json == NULL);
    CHECK(!strcmp(c.lr_scheduler, "cosine") && c.warmup_ratio == 0.03 && c.keep_last == 2);
    et_run_config_free(&c);
    // an empty object is the defaults, with the relative input path among them (synth.dir)
    // made absolute against the working directory
    et_run_config d;
    CHECK(!parse("{}", 0, NULL, &d));
    char cwd[4096], want[4200];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(want, sizeof want, "%s/runs/synth", cwd);
    CHECK(!strcmp(d.synth_dir, want), "synth.dir %s, want %s", d.synth_dir, want);
    char *a = NULL, *b = NULL;
    et_run_config_default(&c);
    CHECK(!strcmp(c.synth_dir, "runs/synth"), "%s", c.synth_dir);
    snprintf(c.synth_dir, sizeof c.synth_dir, "%.500s", want);
    a = et_run_config_to_json(&c), b = et_run_config_to_json(&d);
    CHECK(!strcmp(a, b));
    free(a), free(b);
    et_run_config_free(&c), et_run_config_free(&d);
}

static void test_overrides(void) {
    const char *json =
        "{\"model\": {\"llm\": {\"hidden_size\": 128, \"num_hidden_layers\": 2}},\n"
        " \"lora\": {\"r\": 8}, \"train\": {\"lr\": 0.01, \"output_dir\": \"runs/a\"}}";
    const char *ov[] = {"train.lr=3e-4",
                        "lora.r=32",
                        "lora.r=64",
                        "model.llm.hidden_size=64",
                        "data.template=llava_v1",
                        "data.root=\"/data/x y\"",
                        "lora.targets=[\"q_proj\",\"v_proj\"]",
                        "train.recompute=true",
                        "eval.prompt=What is it? <image>",
                        "eval.template=llava_v1"};
    et_run_config c;
    et_status st = parse(json, (int)(sizeof ov / sizeof ov[0]), ov, &c);
    CHECK(!st, "%s", et_status_msg(st));
    if (st) return et_status_free(st);
    CHECK(c.lr == 3e-4, "%g", c.lr);  // the override wins over the file
    CHECK(c.lora_r == 64);            // later overrides win
    CHECK(!strcmp(c.output_dir, "runs/a"));
    CHECK(c.llm_json && strstr(c.llm_json, "\"hidden_size\":64") &&
              strstr(c.llm_json, "\"num_hidden_layers\":2"),
          "%s", c.llm_json);
    CHECK(!strcmp(c.template_name, "llava_v1") && !strcmp(c.data_root, "/data/x y"));
    CHECK(c.lora_n_targets == 2 && !strcmp(c.lora_targets[1], "v_proj"));
    CHECK(c.recompute && !strcmp(c.eval_prompt, "What is it? <image>"));
    CHECK(!strcmp(c.eval_template, "llava_v1"));
    et_run_config_free(&c);
    // model.llm=null drops the file's decoder shape; a value can be given to a missing section
    const char *ov2[] = {"model.llm=null", "model.vision.hidden_size=32"};
    CHECK(!parse(json, 2, ov2, &c));
    CHECK(c.llm_json == NULL && c.vision_json && strstr(c.vision_json, "\"hidden_size\":32"));
    et_run_config_free(&c);
}

static void test_refused(void) {
    expect_err("{\"train\": {\"lrr\": 1}}", NULL, "cfg.json",
               "unknown key \"train.lrr\" (did you mean \"train.lr\"?)");
    expect_err("{}", "train.lrr=1", "unknown key \"train.lrr\"", "train.lr");
    expect_err("{\"trian\": {}}", NULL, "cfg.json", "trian");
    // one bad override each: {override, what the message must say}
    static const char *const bad[][2] = {
        {"train.batch_size=1.5", "train.batch_size must be an integer"},
        {"train.lr=fast", "train.lr must be a number, got a string"},
        {"lora.r=0", "lora.r = 0 is out of range"},
        {"lora.dropout=1", "lora.dropout = 1 is out of range"},
        {"lora.enabled=1", "lora.enabled must be true or false"},
        {"lora.targets=q_proj", "lora.targets must be an array of strings"},
        {"lora.targets=[1]", "lora.targets[0]"},
        {"model.llm=3", "model.llm must be an object"},
        {"data.template=123", "data.template must be a string, got a number"},
        {"=3", "is not key=value"},
        {"train.lr", "is not key=value"},
        {"train.lr.x=1", "train.lr must be a number, got an object"},
        {"train.lr_scheduler=cosin", "train.lr_scheduler = \"cosin\" is not one of"},
        {"data.template=vicuna", "data.template = \"vicuna\" is not one of vicuna_v1|"},
        {"eval.kind=AU", "eval.kind = \"AU\" is not one of emotion|au"},
        {"attribute_prompt.position=middle",
         "attribute_prompt.position = \"middle\" is not one of"},
        {"attribute_prompt.source=face", "attribute_prompt.source = \"face\" is not one of"},
        {"attribute_prompt.template=Age: {years}",
         "\"{years}\" in \"Age: {years}\" is not a placeholder"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_err("{}", bad[i][0], bad[i][1], NULL);
    char longv[700];
    memset(longv, 'a', sizeof longv);
    memcpy(longv, "data.train=", 11);
    longv[sizeof longv - 1] = 0;
    expect_err("{}", longv, "data.train is longer than", NULL);
    expect_err("{\n  \"train\": {\n    \"lr\": 1e-4,\n  }\n}", NULL, "cfg.json", "line 4, column");
    expect_err("[1, 2]", NULL, "cfg.json", NULL);
    expect_err("{\"attribute_prompt\": {\"enabled\": true, \"source\": \"net\"}}", NULL,
               "attribute_prompt.source", "\"net\"");
}

static void test_round_trip(void) {
    const char *ov[] = {"train.lr=2e-5", "model.llm={\"hidden_size\": 16, \"vocab_size\": 99}",
                        "lora.targets=[\"o_proj\"]", "eval.top_p=0.5", "data.root=/r"};
    et_run_config a, b;
    CHECK(!parse("{}", 5, ov, &a));
    char *ja = et_run_config_to_json(&a);
    CHECK(!et_run_config_parse(ja, "resolved", 0, NULL, &b));
    char *jb = et_run_config_to_json(&b);
    CHECK(!strcmp(ja, jb), "to_json -> parse -> to_json differs");
    CHECK(b.lr == 2e-5 && b.eval_top_p == 0.5 && b.lora_n_targets == 1);
    // save + load (atomic write) gives the same config
    char path[128];
    snprintf(path, sizeof path, "/tmp/et_test_runconfig_%d.json", (int)getpid());
    CHECK(!et_run_config_save(&a, path));
    et_run_config c;
    CHECK(!et_run_config_load(path, 0, NULL, &c));
    char *jc = et_run_config_to_json(&c);
    CHECK(!strcmp(ja, jc));
    et_run_config_free(&c);
    unlink(path);
    // a missing file names it
    et_status st = et_run_config_load("/nonexistent/run.json", 0, NULL, &c);
    CHECK(st && strstr(et_status_msg(st), "/nonexistent/run.json"), "%s", et_status_msg(st));
    et_status_free(st);
    free(ja), free(jb), free(jc);
    et_run_config_free(&a), et_run_config_free(&b);
    et_run_config_load(NULL, 0, NULL, &c);  // defaults only
    CHECK(c.lora_r == 16);
    et_run_config_free(&c);
}

// Messages name where a value came from and what to change (issue 12, point 5).
static void test_messages(void) {
    // a key typed on the command line is blamed on the command line, with the nearest key
    expect_err("{}", "train.epoch=3", "command line: unknown key \"train.epoch\"",
               "did you mean \"train.epochs\"?");
    expect_err("{\"train\": {\"epoch\": 3}}", NULL, "cfg.json: unknown key \"train.epoch\"",
               "train.epochs");
    // section and name weigh apart: trian.lr is train.lr, not data.train
    expect_err("{}", "trian.lr=1", "command line: unknown key \"trian.lr\"",
               "(did you mean \"train.lr\"?)");
    expect_err("{\"trian\": {\"lr\": 1}}", NULL, "cfg.json: unknown key \"trian.lr\"",
               "(did you mean \"train.lr\"?)");
    expect_err("{}", "model.lr=1", "unknown key \"model.lr\"", "(did you mean \"train.lr\"?)");
    expect_err("{}", "lr=1", "unknown key \"lr\"", "(did you mean \"train.lr\"?)");
    expect_err("{\"trian\": 3}", NULL, "cfg.json: unknown section \"trian\"",
               "(did you mean \"train\"?)");
    expect_err("{}", "data.tarin=x.json", "(did you mean \"data.train\"?)", NULL);
    // a bad value typed on the command line names the command line, one in the file the file
    expect_err("{\"train\": {\"lr\": \"fast\"}}", NULL, "cfg.json: train.lr must be a number",
               NULL);
    expect_err("{\"train\": {\"lr\": 0.1}}", "train.lr=fast",
               "command line: train.lr must be a number", NULL);
    // numbers print as typed: integers as integers, no 1.04858e+06
    expect_err("{}", "train.epochs=2000000", "train.epochs = 2000000 is out of range [1, 1048576]",
               NULL);
    expect_err("{}", "train.batch_size=2.5", "train.batch_size must be an integer, got 2.5", NULL);
    expect_err("{}", "train.lr=12.000001", "train.lr = 12.000001 is out of range [0, 10]", NULL);
    expect_err("{}", "data.max_len=1e30", "[8, 16777216]", NULL);
    // select_layer outside the tower given by model.vision
    const char *vis = "{\"model\": {\"vision\": {\"num_hidden_layers\": 3}}}";
    expect_err(vis, "model.select_layer=-5",
               "command line: model.select_layer = -5 is out of range for the 3-layer vision "
               "tower",
               "use -4..3");
    expect_err("{\"model\": {\"vision\": {\"num_hidden_layers\": 3}, \"select_layer\": 4}}", NULL,
               "cfg.json: model.select_layer = 4", "use -4..3");
    et_run_config c;
    const char *ok[] = {"model.select_layer=-4"};
    CHECK(!parse(vis, 1, ok, &c), "select_layer -4 of 3 layers refused");
    et_run_config_free(&c);
}

// Relative input paths in a file resolve against the file's directory (stored absolute);
// outputs and command-line values stay relative to the working directory.
static void test_paths(void) {
    char dir[256], sub[300], path[400], cwd[4096];
    snprintf(dir, sizeof dir, "/tmp/et_test_rc_paths_%d", (int)getpid());
    snprintf(sub, sizeof sub, "%s/configs", dir);
    CHECK(!et_mkdirs(sub));
    snprintf(path, sizeof path, "%s/run.json", sub);
    const char *json =
        "{\"model\": {\"tokenizer\": \"tok/tokenizer.json\", \"llm_path\": \"./llm\",\n"
        "  \"vision_path\": \"/abs/clip\", \"llava_path\": \"../../ckpt/llava\"},\n"
        " \"data\": {\"train\": \"../data/train.json\", \"eval\": \"d/test.json\", \"root\": "
        "\"..\",\n"
        "  \"store\": \"s.h5\"},\n"
        " \"synth\": {\"dir\": \"../runs/synth\"},\n"
        " \"train\": {\"output_dir\": \"runs/x\"}, \"eval\": {\"output_dir\": \"ev\"}}";
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(json, f);
    fclose(f);
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(!chdir("/"));  // the working directory must not matter
    char real[4096], want[4600];
    CHECK(realpath(sub, real) != NULL);
    et_run_config c;
    et_status st = et_run_config_load(path, 0, NULL, &c);
    CHECK(!st, "%s", et_status_msg(st));
    if (!st) {
        snprintf(want, sizeof want, "%s/tok/tokenizer.json", real);
        CHECK(!strcmp(c.tokenizer, want), "tokenizer %s, want %s", c.tokenizer, want);
        snprintf(want, sizeof want, "%s/llm", real);
        CHECK(!strcmp(c.llm_path, want), "llm_path %s", c.llm_path);
        CHECK(!strcmp(c.vision_path, "/abs/clip"), "absolute paths stay: %s", c.vision_path);
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", real);
        *strrchr(parent, '/') = 0;  // dir
        snprintf(want, sizeof want, "%s/data/train.json", parent);
        CHECK(!strcmp(c.train_data, want), "data.train %s, want %s", c.train_data, want);
        CHECK(!strcmp(c.data_root, parent), "data.root %s, want %s", c.data_root, parent);
        snprintf(want, sizeof want, "%s/runs/synth", parent);
        CHECK(!strcmp(c.synth_dir, want), "synth.dir %s", c.synth_dir);
        snprintf(want, sizeof want, "%s/d/test.json", real);
        CHECK(!strcmp(c.eval_data, want), "data.eval %s", c.eval_data);
        snprintf(want, sizeof want, "%s/s.h5", real);
        CHECK(!strcmp(c.store, want), "data.store %s", c.store);
        char grand[4096];
        snprintf(grand, sizeof grand, "%s", parent);
        *strrchr(grand, '/') = 0;
        snprintf(want, sizeof want, "%s/ckpt/llava", grand);
        CHECK(!strcmp(c.llava_path, want), "llava_path %s, want %s", c.llava_path, want);
        // outputs: relative to the working directory, as written
        CHECK(!strcmp(c.output_dir, "runs/x") && !strcmp(c.eval_output_dir, "ev"), "%s %s",
              c.output_dir, c.eval_output_dir);
        CHECK(!strcmp(c.source, path), "source %s", c.source);
        et_run_config_free(&c);
    }
    // command-line values are relative to the working directory (here "/")
    const char *ov[] = {"model.tokenizer=my/tok.json", "data.train=t.json", "data.root=../r"};
    st = et_run_config_load(path, 3, ov, &c);
    CHECK(!st, "%s", et_status_msg(st));
    if (!st) {
        CHECK(!strcmp(c.tokenizer, "/my/tok.json") && !strcmp(c.train_data, "/t.json") &&
                  !strcmp(c.data_root, "/r"),
              "%s %s %s", c.tokenizer, c.train_data, c.data_root);
        c.data_root[0] = 0;
        snprintf(want, sizeof want, "%s/d/test.json", real);
        CHECK(!strcmp(c.eval_data, want), "data.eval %s", c.eval_data);
        // every missing input path is listed at once, each with its key
        st = et_run_config_check_paths(
            &c, ET_RC_NEED_MODEL | ET_RC_NEED_TRAIN_DATA | ET_RC_NEED_EVAL_DATA);
        const char *m = st ? et_status_msg(st) : "";
        CHECK(st && et_status_code(st) == ET_ERR_MISSING, "missing paths accepted");
        CHECK(strstr(m, path) && strstr(m, "6 input paths cannot be used"), "%s", m);
        const char *keys[] = {"model.llava_path", "model.llm_path", "model.vision_path",
                              "model.tokenizer",  "data.store",     "data.eval"};
        for (int i = 0; i < 6; i++) CHECK(strstr(m, keys[i]), "%s not named in: %s", keys[i], m);
        CHECK(strstr(m, "= /abs/clip: No such file or directory"), "%s", m);
        CHECK(!strstr(m, "data.train"), "data.store is set, so data.train is not read: %s", m);
        CHECK(strstr(m, "or override them on the command line (e.g. model.llava_path=PATH)"), "%s",
              m);
        et_status_free(st);
        // only what a command reads is checked; a file where a directory belongs is named
        snprintf(c.llava_path, sizeof c.llava_path, "%s", path);
        c.llm_path[0] = c.vision_path[0] = c.tokenizer[0] = 0;
        st = et_run_config_check_paths(&c, ET_RC_NEED_MODEL);
        m = st ? et_status_msg(st) : "";
        CHECK(st && strstr(m, "1 input path cannot be used") && strstr(m, "not a directory") &&
                  !strstr(m, "data.train"),
              "%s", m);
        CHECK(!strstr(m, "stage-1 output"), "no stage-1 hint without a projector path: %s", m);
        et_status_free(st);
        // a missing stage-1 projector says how it is made
        c.llava_path[0] = 0;
        snprintf(c.projector_path, sizeof c.projector_path, "%s", "/no/mm_projector.safetensors");
        st = et_run_config_check_paths(&c, ET_RC_NEED_MODEL);
        m = st ? et_status_msg(st) : "";
        CHECK(st && strstr(m, "model.projector_path is a stage-1 output: run stage 1 first"), "%s",
              m);
        et_status_free(st);
        CHECK(!et_run_config_check_paths(&c, 0), "need 0 checks nothing");
        et_run_config_free(&c);
    }
    CHECK(!chdir(cwd));
    et_remove_tree(dir);
}

// Every committed config loads.
static void test_committed_configs(void) {
    const char *files[] = {"configs/tiny-emola.json",  "configs/tiny-emola-stage1.json",
                           "configs/tiny-random.json", "configs/emola-7b.json",
                           "configs/tiny-clip.json",   "configs/pretrain/decoder.json"};
    for (int i = 0; i < (int)(sizeof files / sizeof files[0]); i++) {
        et_run_config c;
        et_status st = et_run_config_load(files[i], 0, NULL, &c);
        CHECK(!st, "%s", et_status_msg(st));
        if (!st) et_run_config_free(&c);
        et_status_free(st);
    }
}

int main(void) {
    if (chdir(EMOTUNE_SOURCE_DIR)) return 1;
    RUN(test_defaults);
    RUN(test_overrides);
    RUN(test_refused);
    RUN(test_round_trip);
    RUN(test_messages);
    RUN(test_paths);
    RUN(test_committed_configs);
    return test_summary();
}
