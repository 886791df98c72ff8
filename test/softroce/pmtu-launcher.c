/*
 * pmtu-launcher: creates the UDP socket of a softroce device the way RoCEv2 needs it on Linux and
 * hands it to a program as an inherited descriptor.
 *
 *   pmtu-launcher <ipv4> <port> <fd> <program> [args...]
 *
 * The socket gets IP_MTU_DISCOVER = IP_PMTUDISC_DO before bind(). For an unconnected UDP socket
 * Linux then sends every datagram with DF set and IP ID 0 (ip_select_ident_segs: DF and not
 * ignore_df gives id 0), which is the IPv4 header softroce computes its ICRC over. Node's dgram
 * sockets use PMTU "want" (ignore_df), so Linux picks a per-destination ID that user space cannot
 * know and the ICRC on the wire would not verify (rxe-interop.md 2.1, softroce icrc.ts).
 * The socket is moved to descriptor <fd> (without close-on-exec), then <program> is executed.
 * Built by the tests with clang (see support/launcher.ts).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s <ipv4> <port> <fd> <program> [args...]\n", argv[0]);
		return 2;
	}
	int port = atoi(argv[2]);
	int target = atoi(argv[3]);
	if (port < 1 || port > 65535 || target < 3) {
		fprintf(stderr, "pmtu-launcher: bad port %s or fd %s (fd must be >= 3)\n", argv[2], argv[3]);
		return 2;
	}
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0) {
		perror("pmtu-launcher: socket");
		return 1;
	}
	int v = IP_PMTUDISC_DO;
	if (setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v) != 0) {
		perror("pmtu-launcher: IP_MTU_DISCOVER");
		return 1;
	}
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
		fprintf(stderr, "pmtu-launcher: bad IPv4 address %s\n", argv[1]);
		return 2;
	}
	if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
		fprintf(stderr, "pmtu-launcher: bind %s:%d: %s\n", argv[1], port, strerror(errno));
		return 1;
	}
	if (s != target) {
		if (dup2(s, target) < 0) {
			perror("pmtu-launcher: dup2");
			return 1;
		}
		close(s);
	}
	int flags = fcntl(target, F_GETFD);
	if (flags >= 0) fcntl(target, F_SETFD, flags & ~FD_CLOEXEC);
	execvp(argv[4], argv + 4);
	fprintf(stderr, "pmtu-launcher: exec %s: %s\n", argv[4], strerror(errno));
	return 127;
}
