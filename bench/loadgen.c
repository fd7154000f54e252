/* Load for the live benchmark: a WebSocket client that sends small masked text frames over
 * loopback at a fixed rate, one frame per send(), to a sink server in a child process.
 * usage: loadgen PORT RATE SECONDS   (prints the number of messages sent) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: loadgen PORT RATE SECONDS\n"); return 2; }
    int port = atoi(argv[1]);
    long rate = atol(argv[2]);
    double seconds = atof(argv[3]);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int listener = socket(AF_INET, SOCK_STREAM, 0), yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 1)) { perror("bind"); return 1; }
    pid_t sink = fork();
    if (sink == 0) {
        int connection = accept(listener, NULL, NULL);
        char buffer[1 << 16];
        ssize_t got = recv(connection, buffer, sizeof buffer, 0);
        (void)got;
        const char *answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        send(connection, answer, strlen(answer), 0);
        while (recv(connection, buffer, sizeof buffer, 0) > 0) {}
        _exit(0);
    }
    close(listener);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    if (connect(client, (struct sockaddr *)&address, sizeof address)) { perror("connect"); return 1; }
    const char *request = "GET /load HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    send(client, request, strlen(request), 0);
    char answer[4096];
    if (recv(client, answer, sizeof answer, 0) <= 0) return 1;
    const char payload[] = "{\"t\":\"tick\",\"v\":1234567}";
    unsigned char frame[64], key[4] = {1, 2, 3, 4};
    size_t length = sizeof payload - 1;
    frame[0] = 0x81;
    frame[1] = 0x80 | (unsigned char)length;
    memcpy(frame + 2, key, 4);
    for (size_t i = 0; i < length; i++) frame[6 + i] = (unsigned char)payload[i] ^ key[i % 4];
    long sent = 0;
    double start = now(), elapsed = 0;
    while ((elapsed = now() - start) < seconds) {
        long due = (long)(elapsed * rate);
        while (sent < due) {
            if (send(client, frame, 6 + length, 0) < 0) { perror("send"); return 1; }
            sent++;
        }
    }
    close(client);
    waitpid(sink, NULL, 0);
    printf("%ld %.3f\n", sent, elapsed);
    return 0;
}
