/*
 * `wheelmesh node`: the options, the config, start-up of every part of a
 * node and a clean stop.
 */
#ifndef WM_START_H
#define WM_START_H

/* Runs the `wheelmesh node` command. Returns the process exit code. */
int wm_node_main(int argc, char **argv);

#endif
