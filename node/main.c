/*
 * wheelmesh: one binary, subcommands in the style of `consul agent`.
 */
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "start.h"

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: wheelmesh COMMAND [OPTIONS]\n"
            "\n"
            "A peer-to-peer cache of Python wheels for CI build agents.\n"
            "\n"
            "commands:\n"
            "  node     run a node (pip's index on http://127.0.0.1:7390/)\n"
            "  put      publish wheels into the local node\n"
            "  ls       list the wheels the cluster holds\n"
            "  status   show the node, its cache and its hits\n"
            "  prune    drop wheels from the node's store now\n"
            "  keygen   write a node identity and print its public key\n"
            "\n"
            "Every command takes --help. Exit codes: 0 success, 1 failure,\n"
            "2 usage error.\n");
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {
        {"node", wm_node_main},    {"put", wm_cmd_put},       {"ls", wm_cmd_ls},
        {"status", wm_cmd_status}, {"keygen", wm_cmd_keygen},
        {"prune", wm_cmd_prune},
    };

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("wheelmesh %s\n", WM_VERSION);
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "wheelmesh: unknown command '%s' (try wheelmesh --help)\n",
            argv[1]);
    return 2;
}
