// tests/test_pretrain_face.c - the face network's training targets (train/pretrain_face.c):
// attribute words and numbers -> FaceXFormer's classes, errors naming the value, and the
// inter-ocular NME.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "train/pretrain_face.h"

static void expect(const char *age, double years, const char *g, const char *r, int a_c, int g_c,
                   int r_c) {
    int a, gg, rr;
    et_status s = et_face_attr_classes(age, years, g, r, &a, &gg, &rr);
    CHECK(!s && a == a_c && gg == g_c && rr == r_c,
          "(%s, %g, %s, %s) -> %d %d %d, want %d %d %d %s", age ? age : "-", years, g ? g : "-",
          r ? r : "-", a, gg, rr, a_c, g_c, r_c, s ? et_status_msg(s) : "");
    et_status_free(s);
}

static void expect_err(const char *age, double years, const char *g, const char *r,
                       const char *frag) {
    int a, gg, rr;
    et_status s = et_face_attr_classes(age, years, g, r, &a, &gg, &rr);
    CHECK(s && strstr(et_status_msg(s), frag), "want an error with \"%s\", got %s", frag,
          s ? et_status_msg(s) : "none");
    et_status_free(s);
}

static void test_classes(void) {
    expect("34", 34, "male", "White", 3, 0, 0);
    expect(NULL, 7, "Female", "Black", 0, 1, 1);
    expect(NULL, 70, "m", "Indian", 7, 0, 2);
    expect(NULL, 95, "woman", "East Asian", 7, 1, 3);
    expect(NULL, NAN, NULL, "Southeast_Asian", -100, -100, 3);
    expect(NULL, NAN, NULL, "Latino_Hispanic", -100, -100, 4);
    expect(NULL, NAN, NULL, "Middle Eastern", -100, -100, 4);
    expect("young adult", NAN, "female", "dark", 2, 1, 4);  // the synthetic generator's words
    expect("child", NAN, "male", "light", 0, 0, 0);
    expect("senior", NAN, "male", "medium-light", 6, 0, 1);
    expect("adult", NAN, NULL, "medium", 4, -100, 2);
    expect_err("toddler", NAN, NULL, NULL, "attributes.age \"toddler\"");
    expect_err(NULL, 400, NULL, NULL, "attributes.age 400");
    expect_err(NULL, NAN, "robot", NULL, "attributes.gender \"robot\"");
    expect_err(NULL, NAN, NULL, "martian", "attributes.race \"martian\"");
}

static void test_nme(void) {
    float t[136], p[136];
    for (int k = 0; k < 68; k++) t[2 * k] = 0.01f * (float)k, t[2 * k + 1] = 0;
    t[2 * 36] = -0.5f, t[2 * 36 + 1] = 0, t[2 * 45] = 0.5f, t[2 * 45 + 1] = 0;  // IOD 1
    memcpy(p, t, sizeof p);
    CHECK(et_face_nme(p, t) == 0, "exact: 0");
    for (int k = 0; k < 68; k++) p[2 * k + 1] = t[2 * k + 1] + 0.05f;  // every point 0.05 off
    CHECK_CLOSE(et_face_nme(p, t), 0.05, 1e-6);
}

int main(void) {
    RUN(test_classes);
    RUN(test_nme);
    return test_summary();
}
