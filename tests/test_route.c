/*
 * Unit tests for node/route: name patterns, which indexes serve a project
 * (a pin is the only source of its projects; general indexes in order;
 * cluster-owned projects never go upstream), and whether a page kept from
 * an index may still be used after the configuration changed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

static void
test_patterns(void **state)
{
    static const struct {
        const char *pattern, *name;
        int match;
    } cases[] = {
        {"corp-*", "corp-tools", 1},   {"corp-*", "corp-", 1},
        {"corp-*", "corp", 0},         {"corp-*", "xcorp-a", 0},
        {"*-internal", "a-internal", 1}, {"*-internal", "internal", 0},
        {"a?c", "abc", 1},             {"a?c", "ac", 0},
        {"*", "anything", 1},          {"*a*b*", "xxaxxbxx", 1},
        {"*a*b*", "xxbxxaxx", 0},      {"torch", "torch", 1},
        {"torch", "torchvision", 0},   {"t*h", "torch", 1},
        {"**", "", 1},                 {"a*", "", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (wm_route_match(cases[i].pattern, cases[i].name) !=
            cases[i].match) {
            print_error("%s ~ %s: want %d\n", cases[i].pattern, cases[i].name,
                        cases[i].match);
            fail();
        }
}

/* pypi (general), torchidx (pins torch), mirror (general); cluster owns
 * corp-*. */
static wm_config
config(void)
{
    static char *pins[] = {"torch", "torchvision"};
    static char *owned[] = {"corp-*"};
    static wm_index ixs[] = {
        {"https://pypi.example/simple/", NULL, 0},
        {"https://torch.example/whl/", pins, 2},
        {"https://mirror.example/simple/", NULL, 0},
    };
    wm_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.indexes = ixs;
    cfg.nindexes = 3;
    cfg.cluster_projects = owned;
    cfg.ncluster_projects = 1;
    return cfg;
}

static void
test_route(void **state)
{
    wm_config cfg = config();
    size_t order[3];
    int pinned;

    assert_int_equal(wm_route(&cfg, "torch", order, &pinned), 1);
    assert_true(pinned);
    assert_int_equal(order[0], 1);
    assert_int_equal(wm_route(&cfg, "requests", order, &pinned), 2);
    assert_false(pinned);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 2);
    assert_int_equal(wm_route(&cfg, "corp-tools", order, &pinned), 0);
    assert_true(wm_route_cluster_owned(&cfg, "corp-tools"));
    assert_false(wm_route_cluster_owned(&cfg, "requests"));
    cfg.nindexes = 0; /* offline */
    assert_int_equal(wm_route(&cfg, "requests", order, &pinned), 0);
}

static void
test_allows(void **state)
{
    wm_config cfg = config();

    assert_true(wm_route_allows(&cfg, "requests",
                                "https://pypi.example/simple/"));
    assert_true(wm_route_allows(&cfg, "requests",
                                "https://mirror.example/simple/"));
    /* a pinned index serves nothing else */
    assert_false(wm_route_allows(&cfg, "requests", "https://torch.example/whl/"));
    /* a pin added later: the general index's page is dropped */
    assert_false(wm_route_allows(&cfg, "torch", "https://pypi.example/simple/"));
    assert_true(wm_route_allows(&cfg, "torch", "https://torch.example/whl/"));
    /* an index no longer configured, and a project the cluster owns */
    assert_false(wm_route_allows(&cfg, "requests", "https://gone.example/"));
    assert_false(wm_route_allows(&cfg, "corp-tools",
                                 "https://pypi.example/simple/"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_allows),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
