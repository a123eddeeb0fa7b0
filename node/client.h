/*
 * The commands that talk to a running node over HTTP (put, ls, status,
 * prune) and keygen. Each takes the subcommand's argv and returns the exit code:
 * 0 success, 1 failure (one clear line on stderr), 2 usage error.
 */
#ifndef WM_CLIENT_H
#define WM_CLIENT_H

#define WM_DEFAULT_NODE "http://127.0.0.1:7390"

int wm_cmd_put(int argc, char **argv);
int wm_cmd_ls(int argc, char **argv);
int wm_cmd_status(int argc, char **argv);
int wm_cmd_keygen(int argc, char **argv);
int wm_cmd_prune(int argc, char **argv);

#endif
