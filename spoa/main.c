/* SPDX-License-Identifier: Apache-2.0 */
/* cutover-spoa: command line, first plan, workers, watcher, signals. */
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients_cmd.h"
#include "explain.h"
#include "fallback_writer.h"
#include "log.h"
#include "metrics.h"
#include "plan.h"
#include "runtime.h"
#include "sockets.h"
#include "stepper.h"
#include "status_http.h"
#include "watcher.h"
#include "worker.h"

#ifndef CUTOVER_VERSION
#define CUTOVER_VERSION "unknown"
#endif
#ifndef CUTOVER_DESCRIBE /* git describe --always --dirty, or the version */
#define CUTOVER_DESCRIBE CUTOVER_VERSION
#endif

#define DEFAULT_LISTEN "127.0.0.1:12345"
#define DEFAULT_MAX_CONNECTIONS 4096
#define MAX_THREADS 256
#define DEFAULT_BATCH_WAIT_US 200
#define MAX_BATCH_WAIT_US 10000

static const char usage_text[] =
	"usage: cutover-spoa --config FILE [--listen ADDR:PORT] [--threads N]\n"
	"                    [--log-format logfmt|json]\n"
	"                    [--log-level error|warn|info|debug] [--metrics ADDR:PORT]\n"
	"                    [--max-connections N] [--batch-wait MICROSECONDS]\n"
	"                    [--fallback-dir DIR]\n"
	"                    [--haproxy-socket PATH] [--state-dir DIR] [--journal FILE]\n"
	"       cutover-spoa --check FILE [--haproxy-config HAPROXY_CFG | --json]\n"
	"       cutover-spoa --write-fallback DIR [--haproxy-socket PATH] FILE\n"
	"       cutover-spoa --explain FILE METHOD PATH [--host HOST] [--phase NUMBER|NAME]\n"
	"                    [--all-phases] [--client KEY] [--side new|old] [--json]\n"
	"       cutover-spoa --clients ADDR:PORT [ADDR:PORT...]\n"
	"       cutover-spoa --help | --version\n"
	"\n"
	"SPOE agent that routes HTTP requests through a migration plan.\n"
	"  --config FILE          the plan (YAML); reloaded when it changes and on SIGHUP\n"
	"  --listen ADDR:PORT     SPOP address, default " DEFAULT_LISTEN " ([::1]:PORT for IPv6,\n"
	"                         unix:/path for a Unix socket, removed on stop)\n"
	"  --threads N            worker threads, default: online CPUs\n"
	"  --log-format FORMAT    logfmt (default) or json, one event per line\n"
	"  --log-level LEVEL      error, warn, info (default) or debug; logs go to stderr\n"
	"  --metrics ADDR:PORT    serve GET /metrics (Prometheus text), /clients,\n"
	"                         /clients.json, /status, /healthz, /readyz, /version\n"
	"  --max-connections N    open HAProxy connections at most, default 4096\n"
	"  --batch-wait US        a worker busy with small batches lets NOTIFYs gather\n"
	"                         this long before reading again (fewer wake-ups and system\n"
	"                         calls per decision); 0 reads at once; default 200, at\n"
	"                         most 10000\n"
	"  --state-dir DIR        keep the live phase there (effective.json) across restarts\n"
	"  --journal FILE         append every phase step, refused or held edit (JSON lines)\n"
	"  --fallback-dir DIR     write HAProxy's fallback map there for every plan accepted\n"
	"  --haproxy-socket PATH  HAProxy's admin socket: install each new fallback map there\n"
	"  --check FILE           validate a plan and print a summary\n"
	"  --haproxy-config CFG   with --check: every plan backend needs cutover_<name> in CFG\n"
	"  --write-fallback DIR FILE\n"
	"                         write the fallback map of FILE's current phase into DIR\n"
	"                         (and install it in HAProxy, given its admin socket)\n"
	"  --clients ADDR:PORT... the clients still calling deprecated routes, from each\n"
	"                         agent's metrics port (/clients.json), merged\n"
	"  --explain FILE METHOD PATH\n"
	"                         print the decision for one request\n"
	"  --host HOST            with --explain: the request's Host header\n"
	"  --client KEY           with --explain: the client's key (its X-Api-Client, or its\n"
	"                         address under key: src): its bucket and side of a split\n"
	"  --side new|old         with --explain: the request's X-Cutover-Side\n"
	"  --json                 with --check or --explain: JSON, for programs\n"
	"SIGHUP reloads the plan; SIGTERM and SIGINT stop gracefully.\n";

struct options {
	const char *config;
	const char *listen;
	const char *metrics;
	const char *check;
	const char *explain;
	const char *phase;
	const char *state_dir;
	const char *journal;
	const char *fallback_dir;   /* --fallback-dir, or --write-fallback's DIR */
	const char *haproxy_config;
	const char *haproxy_socket;
	const char *host;           /* --explain --host */
	const char *client;         /* --explain --client */
	const char *side;           /* --explain --side */
	const char *clients;        /* --clients: the first agent */
	int json;                   /* --check/--explain --json */
	int write_fallback;
	int all_phases;
	unsigned threads;
	unsigned max_connections;
	unsigned batch_wait_us;
	enum log_level level;
	enum log_format log_format;
};

static bool parse_count(const char *text, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);

	if (errno || *end || text == end || v < (long)min || v > (long)max)
		return false;
	*out = (unsigned)v;
	return true;
}

/* Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_PHASE = 256, OPT_ALL_PHASES, OPT_MAX_CONNS, OPT_METRICS, OPT_LOG_LEVEL,
	       OPT_STATE_DIR, OPT_JOURNAL, OPT_FALLBACK_DIR, OPT_WRITE_FALLBACK,
	       OPT_HAPROXY_CONFIG, OPT_HAPROXY_SOCKET, OPT_HOST, OPT_JSON, OPT_CLIENT,
	       OPT_SIDE, OPT_CLIENTS, OPT_BATCH_WAIT };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "log-format", required_argument, NULL, 'F' },
		{ "metrics", required_argument, NULL, OPT_METRICS },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONNS },
		{ "batch-wait", required_argument, NULL, OPT_BATCH_WAIT },
		{ "check", required_argument, NULL, 'C' },
		{ "explain", required_argument, NULL, 'E' },
		{ "phase", required_argument, NULL, OPT_PHASE },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "journal", required_argument, NULL, OPT_JOURNAL },
		{ "all-phases", no_argument, NULL, OPT_ALL_PHASES },
		{ "fallback-dir", required_argument, NULL, OPT_FALLBACK_DIR },
		{ "write-fallback", required_argument, NULL, OPT_WRITE_FALLBACK },
		{ "haproxy-config", required_argument, NULL, OPT_HAPROXY_CONFIG },
		{ "haproxy-socket", required_argument, NULL, OPT_HAPROXY_SOCKET },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "client", required_argument, NULL, OPT_CLIENT },
		{ "side", required_argument, NULL, OPT_SIDE },
		{ "clients", required_argument, NULL, OPT_CLIENTS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int c;

	o->threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (unsigned)cpus;
	while ((c = getopt_long(argc, argv, "c:l:t:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'C': o->check = optarg; break;
		case 'E': o->explain = optarg; break;
		case OPT_METRICS: o->metrics = optarg; break;
		case OPT_PHASE: o->phase = optarg; break;
		case OPT_STATE_DIR: o->state_dir = optarg; break;
		case OPT_JOURNAL: o->journal = optarg; break;
		case OPT_ALL_PHASES: o->all_phases = 1; break;
		case OPT_FALLBACK_DIR: o->fallback_dir = optarg; break;
		case OPT_WRITE_FALLBACK: o->fallback_dir = optarg; o->write_fallback = 1; break;
		case OPT_HAPROXY_CONFIG: o->haproxy_config = optarg; break;
		case OPT_HAPROXY_SOCKET: o->haproxy_socket = optarg; break;
		case OPT_HOST: o->host = optarg; break;
		case OPT_JSON: o->json = 1; break;
		case OPT_CLIENT: o->client = optarg; break;
		case OPT_SIDE:
			if (strcmp(optarg, "new") != 0 && strcmp(optarg, "old") != 0) {
				fprintf(stderr, "cutover-spoa: --side: new or old\n");
				return 2;
			}
			o->side = optarg;
			break;
		case OPT_CLIENTS: o->clients = optarg; break;
		case 't':
			if (!parse_count(optarg, 1, MAX_THREADS, &o->threads)) {
				fprintf(stderr, "cutover-spoa: --threads: 1 to %d\n", MAX_THREADS);
				return 2;
			}
			break;
		case OPT_MAX_CONNS:
			if (!parse_count(optarg, 1, 1000000, &o->max_connections)) {
				fprintf(stderr, "cutover-spoa: --max-connections: 1 to 1000000\n");
				return 2;
			}
			break;
		case OPT_BATCH_WAIT:
			if (!parse_count(optarg, 0, MAX_BATCH_WAIT_US, &o->batch_wait_us)) {
				fprintf(stderr, "cutover-spoa: --batch-wait: 0 to %d microseconds\n",
					MAX_BATCH_WAIT_US);
				return 2;
			}
			break;
		case OPT_LOG_LEVEL:
			if (!log_parse_level(optarg, &o->level)) {
				fprintf(stderr, "cutover-spoa: --log-level: error, warn, info or debug\n");
				return 2;
			}
			break;
		case 'F':
			if (!log_parse_format(optarg, &o->log_format)) {
				fprintf(stderr, "cutover-spoa: --log-format: logfmt or json\n");
				return 2;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V': {
			char line[128];

			metrics_set_version(CUTOVER_VERSION, CUTOVER_DESCRIBE);
			metrics_version_line(line, sizeof(line));
			fputs(line, stdout);
			return 0;
		}
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (o->explain) {
		if (argc - optind != 2) {
			fprintf(stderr, "cutover-spoa: --explain FILE METHOD PATH\n");
			return 2;
		}
		return -1;
	}
	if (o->clients)
		return -1; /* the other agents follow */
	if (o->write_fallback) {
		if (argc - optind != 1) {
			fprintf(stderr, "cutover-spoa: --write-fallback DIR FILE\n");
			return 2;
		}
		return -1;
	}
	if (optind != argc || (!o->check && !o->config)) {
		fputs(usage_text, stderr);
		return 2;
	}
	return -1;
}

struct main_state {
	struct watcher *watcher;
	struct stepper *stepper;
};

/* Raises the soft limit on open files so max_connections sockets (plus
 * listeners, the plan watcher and metrics) fit, within the hard limit. */
static void raise_fd_limit(unsigned max_connections, unsigned threads)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_connections + threads + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
		log_warn("open files limited to %llu: fewer than --max-connections %u",
			 (unsigned long long)rl.rlim_cur, max_connections);
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct main_state *st = w->data;

	(void)loop;
	(void)revents;
	log_info("SIGHUP: reloading the plan");
	watcher_reload(st->watcher);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	log_info("%s: stopping", strsignal(w->signum));
	ev_break(loop, EVBREAK_ALL);
}

static int serve(const struct options *o)
{
	char err[1024];
	struct sockaddr_storage addr, maddr;
	socklen_t addrlen, maddrlen = 0;

	if (!sockets_parse(o->listen ? o->listen : DEFAULT_LISTEN, true, &addr, &addrlen, err,
			   sizeof(err)) ||
	    (o->metrics && !sockets_parse(o->metrics, false, &maddr, &maddrlen, err, sizeof(err)))) {
		log_error("%s", err);
		return 1;
	}
	struct ev_loop *loop = ev_default_loop(0);
	struct main_state st = { 0 };
	struct stat plan_st;
	size_t plan_len;
	char *plan_data = plan_read_file(o->config, &plan_len, err, sizeof(err));
	struct plan *plan = plan_data ? plan_load_buffer(o->config, plan_data, plan_len, err,
							 sizeof(err))
				      : NULL;
	if (!plan || stat(o->config, &plan_st) != 0 ||
	    !(st.stepper = stepper_new(loop, o->config, o->state_dir, o->journal, err,
				       sizeof(err)))) {
		log_error("%s", err);
		plan_free(plan);
		free(plan_data);
		return 1;
	}
	stepper_first(st.stepper, plan, plan_data, plan_len,
		      &(struct plan_file_facts){ .uid = plan_st.st_uid, .mtime = plan_st.st_mtim });
	free(plan_data);
	unsigned phase = plan_phase_number(plan, plan_current_phase(plan));
	const char *phase_name = plan_phase_name(plan, plan_current_phase(plan));
	metrics_set_version(CUTOVER_VERSION, CUTOVER_DESCRIBE);
	metrics_plan_applied(plan, false, ev_time());
	fallback_writer_configure(o->fallback_dir, o->haproxy_socket);
	fallback_writer_publish(plan);
	runtime_init(plan);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(o->max_connections, o->threads);

	ev_signal hup, term, intr;
	ev_signal_init(&hup, on_hup, SIGHUP);
	ev_signal_init(&term, on_stop_signal, SIGTERM);
	ev_signal_init(&intr, on_stop_signal, SIGINT);
	hup.data = &st;
	ev_signal_start(loop, &hup);
	ev_signal_start(loop, &term);
	ev_signal_start(loop, &intr);

	struct status_http *ms = NULL;
	if (o->metrics &&
	    !(ms = status_http_start(loop, (struct sockaddr *)&maddr, maddrlen, err,
				     sizeof(err)))) {
		log_error("--metrics %s: %s", o->metrics, err);
		stepper_free(st.stepper);
		runtime_shutdown();
		return 1;
	}
	st.watcher = watcher_start(loop, o->config, st.stepper);
	if (!st.watcher) {
		log_error("cannot watch %s", o->config);
		stepper_free(st.stepper);
		status_http_stop(ms);
		runtime_shutdown();
		return 1;
	}
	struct workers *ws = workers_start(o->threads, (struct sockaddr *)&addr, addrlen,
					   o->max_connections, o->batch_wait_us, err, sizeof(err));
	if (!ws) {
		log_error("--listen %s: %s", o->listen ? o->listen : DEFAULT_LISTEN, err);
		watcher_stop(st.watcher);
		stepper_free(st.stepper);
		status_http_stop(ms);
		runtime_shutdown();
		metrics_free_all();
		return 1;
	}
	metrics_set_listening();
	log_info("cutover-spoa %s: listening on %s with %u threads, plan %s, phase %u (%s)",
		 CUTOVER_VERSION, o->listen ? o->listen : DEFAULT_LISTEN, o->threads, o->config,
		 phase, phase_name ? phase_name : "?");
	if (o->metrics)
		log_info("metrics on http://%s/metrics", o->metrics);

	ev_run(loop, 0);

	watcher_stop(st.watcher);
	stepper_free(st.stepper);
	status_http_stop(ms);
	workers_stop(ws);
	runtime_shutdown();
	metrics_free_all();
	ev_signal_stop(loop, &hup);
	ev_signal_stop(loop, &term);
	ev_signal_stop(loop, &intr);
	log_info("stopped");
	return 0;
}

/* --clients A [B...]: A is the option's argument, the rest follow. */
static int clients(const struct options *o, char **rest, int nrest)
{
	char **addrs = malloc(((size_t)nrest + 1) * sizeof(*addrs));

	if (!addrs) {
		fprintf(stderr, "cutover-spoa: out of memory\n");
		return 2;
	}
	addrs[0] = (char *)o->clients;
	memcpy(addrs + 1, rest, (size_t)nrest * sizeof(*addrs));
	int rc = clients_command(addrs, nrest + 1, stdout, stderr);
	free(addrs);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = { .max_connections = DEFAULT_MAX_CONNECTIONS,
			     .batch_wait_us = DEFAULT_BATCH_WAIT_US,
			     .level = LOGL_INFO };
	int rc = parse_options(argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (o.clients)
		return clients(&o, argv + optind, argc - optind);
	if (o.write_fallback && o.haproxy_socket)
		return fallback_writer_once(o.fallback_dir, o.haproxy_socket, argv[optind]);
	if (o.write_fallback)
		return explain_write_fallback(argv[optind], o.fallback_dir, stdout, stderr);
	if (o.check && o.haproxy_config)
		return explain_check_haproxy(o.check, o.haproxy_config, stdout, stderr);
	if (o.check && o.json)
		return explain_check_json(o.check, stdout);
	if (o.check)
		return explain_check(o.check, stdout, stderr);
	if (o.explain) {
		struct explain_request_opts e = { .host = o.host, .phase = o.phase,
						  .all_phases = o.all_phases, .json = o.json,
						  .client = o.client, .side = o.side };

		return explain_request_with(o.explain, argv[optind], argv[optind + 1], &e, stdout,
					    stderr);
	}
	log_set_level(o.level);
	log_set_format(o.log_format);
	return serve(&o);
}
