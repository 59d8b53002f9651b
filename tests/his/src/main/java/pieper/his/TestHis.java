package pieper.his;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.rest.annotation.Operation;
import ca.uhn.fhir.rest.annotation.OperationParam;
import ca.uhn.fhir.rest.annotation.Transaction;
import ca.uhn.fhir.rest.annotation.TransactionParam;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.exceptions.InternalErrorException;
import ca.uhn.fhir.rest.server.exceptions.UnprocessableEntityException;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.BooleanType;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.CodeSystem;
import org.hl7.fhir.r4.model.Identifier;
import org.hl7.fhir.r4.model.OperationOutcome;
import org.hl7.fhir.r4.model.Resource;
import org.hl7.fhir.r4.model.StringType;
import org.hl7.fhir.r4.model.StructureDefinition;
import org.hl7.fhir.r4.model.ValueSet;

/**
 * A test HIS: a HAPI FHIR plain server that takes transaction Bundles at its
 * base URL, validates each against the Nictiz zib2020 profiles (an ERROR
 * refuses the whole Bundle with 422, as a HIS would), and creates each entry
 * unless one with its `ifNoneExist` identifier exists. `$received` lists what
 * it holds with counts; `$outage` makes it answer 503; `$reject` makes it
 * answer 422, for the tests.
 */
public class TestHis {
  static final FhirContext CTX = FhirContext.forR4Cached();
  static final Map<String, Resource> STORED = new LinkedHashMap<>();
  static final List<String> LOG = new ArrayList<>();
  static final AtomicBoolean OUTAGE = new AtomicBoolean();
  static final AtomicBoolean REJECT = new AtomicBoolean();
  static FhirValidator validator;
  static int transactions;
  static int validationErrors;

  public static class Provider {
    @Transaction
    public Bundle transaction(@TransactionParam Bundle bundle) {
      synchronized (STORED) {
        if (OUTAGE.get()) {
          throw new InternalErrorException("HIS down for maintenance") {
            @Override
            public int getStatusCode() {
              return 503;
            }
          };
        }
        if (REJECT.get()) {
          throw new UnprocessableEntityException("patient unknown in this HIS");
        }
        ValidationResult result = validator.validateWithResult(bundle);
        List<String> errors = new ArrayList<>();
        for (SingleValidationMessage m : result.getMessages()) {
          if (m.getSeverity() == ResultSeverityEnum.ERROR || m.getSeverity() == ResultSeverityEnum.FATAL) {
            errors.add(m.getLocationString() + ": " + m.getMessage());
          }
        }
        if (!errors.isEmpty()) {
          validationErrors += errors.size();
          LOG.addAll(errors);
          throw new UnprocessableEntityException("invalid: " + String.join("; ", errors));
        }
        transactions++;
        Bundle response = new Bundle().setType(Bundle.BundleType.TRANSACTIONRESPONSE);
        for (Bundle.BundleEntryComponent entry : bundle.getEntry()) {
          Resource resource = entry.getResource();
          String key = resource.fhirType() + "?" + entry.getRequest().getIfNoneExist();
          String status;
          if (STORED.containsKey(key)) {
            status = "200 OK";
          } else {
            resource.setId(resource.fhirType() + "/" + (STORED.size() + 1));
            STORED.put(key, resource);
            status = "201 Created";
          }
          response.addEntry().getResponse().setStatus(status)
              .setLocation(STORED.get(key).getIdElement().getValue());
        }
        return response;
      }
    }

    @Operation(name = "$received", idempotent = true)
    public Bundle received() {
      synchronized (STORED) {
        Bundle out = new Bundle().setType(Bundle.BundleType.COLLECTION);
        out.setTotal(transactions);
        for (Resource r : STORED.values()) {
          out.addEntry().setResource(r);
        }
        out.addLink().setRelation("validation-errors").setUrl(String.valueOf(validationErrors));
        return out;
      }
    }

    @Operation(name = "$outage")
    public OperationOutcome outage(@OperationParam(name = "on") BooleanType on) {
      OUTAGE.set(on.booleanValue());
      return new OperationOutcome();
    }

    @Operation(name = "$reject")
    public OperationOutcome reject(@OperationParam(name = "on") BooleanType on) {
      REJECT.set(on.booleanValue());
      return new OperationOutcome();
    }
  }

  static int load(Path dir, PrePopulatedValidationSupport into) throws IOException {
    int n = 0;
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path f : files.filter(p -> p.toString().endsWith(".xml")).toList()) {
        IBaseResource r = CTX.newXmlParser().parseResource(Files.readString(f));
        if (r instanceof StructureDefinition sd) {
          into.addStructureDefinition(sd);
        } else if (r instanceof ValueSet vs) {
          into.addValueSet(vs);
        } else if (r instanceof CodeSystem cs && cs.getContent() != CodeSystem.CodeSystemContentMode.NOTPRESENT) {
          into.addCodeSystem(cs);
        } else {
          continue;
        }
        n++;
      }
    }
    return n;
  }

  public static void main(String[] args) throws Exception {
    int port = args.length > 0 ? Integer.parseInt(args[0]) : 0;
    Path defs = Path.of(args.length > 1 ? args[1] : "../../../shared/fhir/nictiz-zib2020/resources");
    PrePopulatedValidationSupport nictiz = new PrePopulatedValidationSupport(CTX);
    load(defs, nictiz);
    UnknownCodeSystemWarningValidationSupport unknown = new UnknownCodeSystemWarningValidationSupport(CTX);
    unknown.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
    ValidationSupportChain chain = new ValidationSupportChain(
        new DefaultProfileValidationSupport(CTX), nictiz,
        new CommonCodeSystemsTerminologyService(CTX),
        new InMemoryTerminologyServerValidationSupport(CTX),
        new SnapshotGeneratingValidationSupport(CTX), unknown);
    validator = CTX.newValidator().registerValidatorModule(new FhirInstanceValidator(chain));

    RestfulServer fhir = new RestfulServer(CTX);
    fhir.registerProvider(new Provider());
    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost("127.0.0.1");
    connector.setPort(port);
    server.addConnector(connector);
    ServletContextHandler context = new ServletContextHandler();
    context.addServlet(new ServletHolder(fhir), "/fhir/*");
    server.setHandler(context);
    server.start();
    // Warm the validator so the first transaction is not slow.
    validator.validateWithResult(new Bundle().setType(Bundle.BundleType.TRANSACTION));
    System.out.println("listening on " + connector.getLocalPort());
    System.out.flush();
    server.join();
  }
}
