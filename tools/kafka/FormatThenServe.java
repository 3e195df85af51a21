package datakit.kafka;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;

/**
 * A Kafka node's JVM as datakit starts it (src/datakit/nodes/kafka.py): formats the node's
 * storage first when asked, in this same JVM, then serves as the broker and controller.
 * kafka-storage format is otherwise a JVM of its own per node, about a third of the CPU a
 * node's start costs. tools/build-kafka compiles this into PREFIX/datakit/kafka-node.jar.
 *
 *   java ... datakit.kafka.FormatThenServe [--format ARGS_FILE] SERVER_PROPERTIES
 *
 * ARGS_FILE holds kafka-storage format's arguments, one a line (SCRAM passwords among them,
 * which is why they are not on the command line): it is read and deleted before anything
 * else, and a missing one means "formatted already", as when a drill restarts the node with
 * the same command line. A failed format exits 1 with its message.
 */
public final class FormatThenServe {
    private FormatThenServe() {}

    public static void main(String[] args) throws Exception {
        String config = args[args.length - 1];
        if (args.length == 3 && args[0].equals("--format")) {
            Path file = Paths.get(args[1]);
            if (Files.exists(file)) {
                List<String> format = Files.readAllLines(file);
                Files.delete(file);
                int rc;
                try {
                    rc = kafka.tools.StorageTool.execute(format.toArray(new String[0]), System.out);
                } catch (Exception e) {
                    System.err.println("datakit: formatting the storage failed: " + e.getMessage());
                    rc = 1;
                }
                if (rc != 0) {
                    System.exit(rc);
                }
            }
        } else if (args.length != 1) {
            System.err.println("usage: FormatThenServe [--format ARGS_FILE] SERVER_PROPERTIES");
            System.exit(2);
        }
        kafka.Kafka.main(new String[] {config});
    }
}
